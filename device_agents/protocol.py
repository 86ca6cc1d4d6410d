"""Job and Result: the records that cross between the host and a device, as versioned JSON.

This module is the written protocol. The host (`edgeprune.fleet`) imports it too, so there
is exactly one definition of each record.

Wire format
-----------
A job is a JSON object queued as ``<spool>/jobs/queued/<id>.json`` (by ``edgeprune-agent
submit``, see docs/agent-contract.md); a result is a JSON object the agent writes to
``<spool>/results/<id>.json``. Both carry ``"schema"``; a
reader refuses a schema it does not know (``ProtocolError``) rather than guessing.

Job (schema 1)::

    {"schema": 1, "id": "j-20261121-ab12", "model_sha256": "<64 hex>",
     "model": "models/<64 hex>.tflite", "label": "mobilenet int8",
     "created_at": 1795300000.0,
     "options": {"threads": [1, 4], "runs": 50, "min_seconds": null, "warmup": 5,
                 "xnnpack": true, "cpus": [2, 3], "delay_ms": 0.0,
                 "inputs": "<64 hex>.npz" | null, "timeout_s": 600.0, "seed": 0,
                 "runtime": null, "round_runs": 5, "precision": null, "max_seconds": null,
                 "rounds_per_process": 2},
     "members": []}

A group job (several models measured in alternating rounds) lists 2 to 32 ``members``
``{"id", "model_sha256", "model", "label"}``; its own model is the first member's, and its
Result holds one Result per member in ``members`` (each with ``group`` = the group id).

Result (schema 1): see `Result`; every latency is in milliseconds, every time stamp in
seconds since the epoch, memory in KiB.

Names that become paths on the device (job ids, model and input file names) are checked
here with strict patterns, so no record can point outside the spool.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Dict, List, Optional, Sequence, Tuple

SCHEMA_VERSION = 1

# \Z, not $: `$` also matches before a trailing newline ("abc\n" must not be a name)
JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")
SHA256_PATTERN = re.compile(r"^[0-9a-f]{64}\Z")
INPUTS_NAME_PATTERN = re.compile(r"^[0-9a-f]{64}\.(npz|npy)\Z")
RUNTIME_NAMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
STATUSES = ("ok", "error")  # of a measurement
# of a result: "cancelled" = the host (or `edgeprune-agent cancel`) stopped the job; it holds
# no measurements and is never re-run
RESULT_STATUSES = ("ok", "error", "cancelled")
CANCELLED_MESSAGE = "cancelled by the host"
# A result must name a model; when a job file is too broken to say which, this stands in.
UNKNOWN_SHA256 = "0" * 64
# Machine-readable reasons for an error result (`Result.error_kind`, `Measurement.error_kind`).
# Readers must accept kinds they do not know (new ones may be added without a schema bump).
ERROR_KINDS = (
    "bad_job",  # the job file is malformed, of another schema, or names a forbidden path
    "model_missing",  # models/<sha256>.tflite is not in the spool
    "hash_mismatch",  # the model file's sha256 is not the one in its name
    "bad_model",  # not a TFLite flatbuffer, truncated or corrupt, or rejected by the runtime
    "bad_inputs",  # the shipped .npy/.npz does not fit the model's inputs
    "runtime_missing",  # no TFLite runtime (or not the one forced) is installed
    "runtime_error",  # the runtime raised while running the model
    "crashed",  # the benchmark process died from a signal (e.g. SIGSEGV in the runtime)
    "timeout",  # the job ran past options.timeout_s and was killed
    "cpus_unavailable",  # options.cpus names CPUs this process may not use
    "interrupted",  # the agent was killed twice while running this job
    "write_failed",  # the full result could not be written (e.g. disk full)
    "cancelled",  # the job was cancelled (queued: never ran; running: its process was killed)
)
MAX_THREADS = 256
MAX_THREAD_COUNTS = 64  # one measurement (and one stored row) per entry: bounded
MAX_LABEL = 200
# What one Result may hold: a measurement keeps at most this many raw latencies (an evenly
# spaced sample in run order beyond it; `summary` is always over every run), and a result's
# JSON text is at most this long.
MAX_KEPT_LATENCIES = 10_000
MAX_RESULT_BYTES = 32 << 20
# A group's Result holds every member's: all of its measurements together keep at most what
# one single-model Result may (MAX_KEPT_LATENCIES per thread count), so it stays as small.
MAX_KEPT_PER_RESULT = MAX_KEPT_LATENCIES * MAX_THREAD_COUNTS
MAX_ROUND_RUNS = 100_000
DEFAULT_MAX_SECONDS = 60.0  # the cap on measuring when options.precision is set without max_seconds
MIN_MEMBERS, MAX_MEMBERS = 2, 32  # models in one interleaved group job
CONFIDENCE = 0.95


class ProtocolError(ValueError):
    """A record that cannot be accepted; the message is one line a user can act on."""


# --------------------------------------------------------------------------- validation


def validate_job_id(value: Any) -> str:
    if not isinstance(value, str) or not JOB_ID_PATTERN.match(value):
        raise ProtocolError(
            f"job id {value!r} is not allowed: use 1-100 letters, digits, '.', '_' or '-', "
            "starting with a letter or digit"
        )
    return value


def validate_sha256(value: Any, what: str = "model_sha256") -> str:
    if not isinstance(value, str) or not SHA256_PATTERN.match(value):
        raise ProtocolError(f"{what} {value!r} is not a sha256 (64 lowercase hex digits)")
    return value


def model_relpath(sha256: str) -> str:
    """Where a model lives inside the spool: named by its hash, nowhere else."""
    return "models/" + validate_sha256(sha256) + ".tflite"


def _expect(obj: Dict[str, Any], key: str, types: tuple, where: str, optional: bool = False) -> Any:
    if key not in obj or obj[key] is None:
        if optional:
            return None
        raise ProtocolError(f"{where}: missing field {key!r}")
    value = obj[key]
    # bool is an int subclass: never accept it where a number is meant, and vice versa.
    if isinstance(value, bool) and bool not in types:
        raise ProtocolError(f"{where}: field {key!r} must be {_type_names(types)}, not a boolean")
    if not isinstance(value, types):
        raise ProtocolError(
            f"{where}: field {key!r} must be {_type_names(types)}, not {type(value).__name__}"
        )
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"{where}: field {key!r} must be a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -(2**63) <= value < 2**63:
        raise ProtocolError(f"{where}: field {key!r} is out of range (a 64-bit integer)")
    return value


def _type_names(types: tuple) -> str:
    names = {
        bool: "a boolean",
        int: "an integer",
        float: "a number",
        str: "a string",
        list: "a list",
        dict: "an object",
    }
    return " or ".join(names.get(t, t.__name__) for t in types)


def _no_unknown(obj: Dict[str, Any], known: set, where: str) -> None:
    unknown = sorted(set(obj) - known)
    if unknown:
        raise ProtocolError(f"{where}: unknown field(s) {', '.join(map(repr, unknown))}")


def _load_object(text: Any, what: str) -> Dict[str, Any]:
    if isinstance(text, (bytes, bytearray)):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError(f"{what} is not UTF-8 text") from None
    if isinstance(text, str):
        try:
            obj = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ProtocolError(f"{what} is not valid JSON: {str(exc)[:120]}") from None
    else:
        obj = text
    if not isinstance(obj, dict):
        raise ProtocolError(f"{what} must be a JSON object")
    try:  # "\ud800" escapes decode to text that cannot be stored or printed anywhere
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ProtocolError(f"{what} holds text that is not valid Unicode") from None
    except (TypeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"{what} is not plain JSON data ({type(exc).__name__})") from None
    schema = obj.get("schema")
    if isinstance(schema, bool) or not isinstance(schema, int):
        raise ProtocolError(f"{what} has no integer 'schema' field")
    if schema != SCHEMA_VERSION:
        raise ProtocolError(
            f"{what} has schema version {schema}; this agent speaks version {SCHEMA_VERSION} "
            "(upgrade the agent or the host so both match)"
        )
    return obj


# --------------------------------------------------------------------------- job


@dataclass
class BenchOptions:
    """How to benchmark; the same options on the CLI, in a job and in a recipe.

    With only ``runs``, exactly that many timed runs; with only ``min_seconds``, timed runs
    until that much time has passed (at most 1000000 runs); with both, at least as many
    runs and at least as long. ``timeout_s`` bounds the whole job (every thread count);
    ``seed`` fixes the random inputs (one stream per input dtype and shape).
    """

    threads: List[int] = field(default_factory=lambda: [1])
    runs: Optional[int] = 50
    min_seconds: Optional[float] = None
    warmup: int = 5
    xnnpack: bool = True
    cpus: Optional[List[int]] = None
    delay_ms: float = 0.0
    inputs: Optional[str] = None
    timeout_s: float = 600.0
    seed: int = 0
    runtime: Optional[str] = None
    round_runs: int = 5
    precision: Optional[float] = None
    max_seconds: Optional[float] = None
    rounds_per_process: int = 2

    def validate(self, where: str = "options") -> BenchOptions:
        if not isinstance(self.threads, list) or not 1 <= len(self.threads) <= MAX_THREAD_COUNTS:
            raise ProtocolError(
                f"{where}: threads must be a list of 1 to {MAX_THREAD_COUNTS} integers"
            )
        for value in self.threads:
            if (
                isinstance(value, bool)
                or not isinstance(value, int)
                or not 1 <= value <= MAX_THREADS
            ):
                raise ProtocolError(
                    f"{where}: threads must be whole numbers from 1 to {MAX_THREADS}, got {value!r}"
                )
        if self.runs is None and self.min_seconds is None:
            raise ProtocolError(f"{where}: give runs or min_seconds")
        if self.runs is not None and not _whole_number(self.runs, 1, 1_000_000):
            raise ProtocolError(f"{where}: runs must be from 1 to 1000000, got {self.runs!r}")
        if self.min_seconds is not None and not _positive_number(self.min_seconds, 86400):
            raise ProtocolError(
                f"{where}: min_seconds must be > 0 and <= 86400, got {self.min_seconds!r}"
            )
        if not _whole_number(self.warmup, 0, 100_000):
            raise ProtocolError(f"{where}: warmup must be from 0 to 100000, got {self.warmup!r}")
        if not isinstance(self.xnnpack, bool):
            raise ProtocolError(f"{where}: xnnpack must be true or false")
        if self.cpus is not None:
            if not isinstance(self.cpus, list) or not 1 <= len(self.cpus) <= 4096:
                raise ProtocolError(f"{where}: cpus must be a non-empty list of CPU numbers")
            for cpu in self.cpus:
                if isinstance(cpu, bool) or not isinstance(cpu, int) or not 0 <= cpu < 4096:
                    raise ProtocolError(f"{where}: cpus must be CPU numbers >= 0, got {cpu!r}")
        if not _non_negative_number(self.delay_ms, 60_000):
            raise ProtocolError(f"{where}: delay_ms must be from 0 to 60000, got {self.delay_ms!r}")
        if self.inputs is not None and (
            not isinstance(self.inputs, str) or not INPUTS_NAME_PATTERN.match(self.inputs)
        ):
            raise ProtocolError(
                f"{where}: inputs {self.inputs!r} must be '<sha256>.npz' or '<sha256>.npy' in the spool's inputs dir"
            )
        if not _positive_number(self.timeout_s, 7 * 86400):
            raise ProtocolError(f"{where}: timeout_s must be > 0, got {self.timeout_s!r}")
        if not _whole_number(self.seed, 0, 2**32 - 1):
            raise ProtocolError(f"{where}: seed must be a whole number from 0 to 2**32-1")
        if self.runtime is not None and self.runtime not in RUNTIME_NAMES:
            raise ProtocolError(
                f"{where}: runtime {self.runtime!r} is unknown; choose one of {', '.join(RUNTIME_NAMES)}"
            )
        if not _whole_number(self.round_runs, 1, MAX_ROUND_RUNS):
            raise ProtocolError(
                f"{where}: round_runs must be from 1 to {MAX_ROUND_RUNS}, got {self.round_runs!r}"
            )
        if self.precision is not None and not (
            _positive_number(self.precision, 0.5) and self.precision < 0.5
        ):
            raise ProtocolError(
                f"{where}: precision must be a fraction > 0 and < 0.5 (0.02 = 2 %), "
                f"got {self.precision!r}"
            )
        if self.max_seconds is not None and not _positive_number(self.max_seconds, 86400):
            raise ProtocolError(
                f"{where}: max_seconds must be > 0 and <= 86400, got {self.max_seconds!r}"
            )
        if not _whole_number(self.rounds_per_process, 1, MAX_ROUND_RUNS):
            raise ProtocolError(
                f"{where}: rounds_per_process must be from 1 to {MAX_ROUND_RUNS}, "
                f"got {self.rounds_per_process!r}"
            )
        return self

    def precision_seconds(self) -> Optional[float]:
        """The cap on timed measuring per thread count while chasing `precision` (None: no chase)."""
        if self.precision is None:
            return None
        return self.max_seconds if self.max_seconds is not None else DEFAULT_MAX_SECONDS

    @classmethod
    def from_dict(cls, obj: Any, where: str = "options") -> BenchOptions:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{where} must be a JSON object")
        _no_unknown(obj, set(cls.__dataclass_fields__), where)
        defaults = cls()
        values = {}
        for name in cls.__dataclass_fields__:
            values[name] = (
                obj.get(name, getattr(defaults, name)) if name in obj else getattr(defaults, name)
            )
        for name in ("min_seconds", "delay_ms", "timeout_s", "precision", "max_seconds"):
            if isinstance(values[name], int) and not isinstance(values[name], bool):
                values[name] = float(values[name])
        return cls(**values).validate(where)


def _whole_number(value: Any, lower: int, upper: int) -> bool:
    """An int (never a bool) in [lower, upper]."""
    return not isinstance(value, bool) and isinstance(value, int) and lower <= value <= upper


def _positive_number(value: Any, upper: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 < value <= upper
    )


def _non_negative_number(value: Any, upper: float) -> bool:
    return (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0 <= value <= upper
    )


@dataclass
class JobMember:
    """One model of an interleaved group job; its result is a Result with job_id = `id`."""

    id: str
    model_sha256: str
    model: str = ""
    label: str = ""

    def __post_init__(self) -> None:
        if (
            not self.model
            and isinstance(self.model_sha256, str)
            and SHA256_PATTERN.match(self.model_sha256)
        ):
            self.model = model_relpath(self.model_sha256)

    def validate(self, where: str) -> JobMember:
        validate_job_id(self.id)
        validate_sha256(self.model_sha256, f"{where}: model_sha256")
        if self.model != model_relpath(self.model_sha256):
            raise ProtocolError(
                f"{where}: model path {self.model!r} is not allowed; a member may only name "
                f"'models/<sha256>.tflite' inside the spool"
            )
        if not isinstance(self.label, str) or len(self.label) > MAX_LABEL:
            raise ProtocolError(
                f"{where}: label must be a string of at most {MAX_LABEL} characters"
            )
        return self

    @classmethod
    def from_dict(cls, obj: Any, where: str) -> JobMember:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{where} must be an object with id, model_sha256, model, label")
        _no_unknown(obj, set(cls.__dataclass_fields__), where)
        return cls(
            id=validate_job_id(_expect(obj, "id", (str,), where)),
            model_sha256=validate_sha256(
                _expect(obj, "model_sha256", (str,), where), f"{where}: model_sha256"
            ),
            model=_expect(obj, "model", (str,), where),
            label=_expect(obj, "label", (str,), where, optional=True) or "",
        ).validate(where)


@dataclass
class Job:
    """One benchmark request for one model on one device, or, with `members`, for several
    models measured in alternating rounds (a group job; its own model is the first member's)."""

    id: str
    model_sha256: str
    options: BenchOptions = field(default_factory=BenchOptions)
    label: str = ""
    created_at: float = field(default_factory=time.time)
    model: str = ""
    schema: int = SCHEMA_VERSION
    members: List[JobMember] = field(default_factory=list)

    @classmethod
    def group(
        cls,
        id: str,
        members: List[JobMember],
        options: Optional[BenchOptions] = None,
        **extra: Any,
    ) -> Job:
        """A group job whose own model and label are its first member's, as the wire wants."""
        if not members:
            raise ProtocolError(f"job {id}: a group job needs members")
        first = members[0]
        return cls(
            id=id,
            model_sha256=first.model_sha256,
            model=first.model,
            label=first.label,
            options=options if options is not None else BenchOptions(),
            members=list(members),
            **extra,
        )

    def __post_init__(self) -> None:
        if (
            not self.model
            and isinstance(self.model_sha256, str)
            and SHA256_PATTERN.match(self.model_sha256)
        ):
            self.model = model_relpath(self.model_sha256)

    def validate(self) -> Job:
        validate_job_id(self.id)
        validate_sha256(self.model_sha256)
        if self.model != model_relpath(self.model_sha256):
            raise ProtocolError(
                f"job {self.id}: model path {self.model!r} is not allowed; a job may only name "
                f"'models/<sha256>.tflite' inside the spool"
            )
        if not isinstance(self.label, str) or len(self.label) > MAX_LABEL:
            raise ProtocolError(
                f"job {self.id}: label must be a string of at most {MAX_LABEL} characters"
            )
        if not _non_negative_number(self.created_at, 1e11):
            raise ProtocolError(f"job {self.id}: created_at must be a time stamp in seconds")
        self.options.validate(f"job {self.id} options")
        if not isinstance(self.members, list):
            raise ProtocolError(f"job {self.id}: members must be a list")
        if self.members:
            self._validate_members()
        return self

    def _validate_members(self) -> None:
        where = f"job {self.id}"
        if not MIN_MEMBERS <= len(self.members) <= MAX_MEMBERS:
            raise ProtocolError(
                f"{where}: a group job needs {MIN_MEMBERS} to {MAX_MEMBERS} members, "
                f"got {len(self.members)}"
            )
        seen = set()
        for index, member in enumerate(self.members):
            if not isinstance(member, JobMember):
                raise ProtocolError(f"{where}: member {index} must be a JobMember")
            member.validate(f"{where} member {index}")
            if member.id == self.id:
                raise ProtocolError(
                    f"{where}: member id {member.id!r} is the group's own id; give members "
                    "their own ids"
                )
            if member.id in seen:
                raise ProtocolError(f"{where}: member id {member.id!r} appears twice")
            seen.add(member.id)
        first = self.members[0]
        if (self.model_sha256, self.model, self.label) != (
            first.model_sha256,
            first.model,
            first.label,
        ):
            raise ProtocolError(
                f"{where}: a group job's model_sha256, model and label must be its first member's"
            )

    def member_ids(self) -> List[str]:
        return [m.id for m in self.members]

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.validate().to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: Any) -> Job:
        obj = _load_object(text, "job")
        _no_unknown(obj, set(cls.__dataclass_fields__), "job")
        job_id = validate_job_id(_expect(obj, "id", (str,), "job"))
        where = f"job {job_id}"
        job = cls(
            id=job_id,
            model_sha256=validate_sha256(_expect(obj, "model_sha256", (str,), where)),
            options=BenchOptions.from_dict(obj.get("options", {}), f"{where} options"),
            label=_expect(obj, "label", (str,), where, optional=True) or "",
            created_at=float(_expect(obj, "created_at", (int, float), where)),
            model=_expect(obj, "model", (str,), where),
            schema=obj["schema"],
            members=[
                JobMember.from_dict(raw, f"{where} member {index}")
                for index, raw in enumerate(
                    _expect(obj, "members", (list,), where, optional=True) or []
                )
            ],
        )
        return job.validate()


# --------------------------------------------------------------------------- result


@dataclass
class LatencySummary:
    """Percentiles of every timed run, each with a distribution-free `confidence` interval.

    ``p50_ci`` (``p90_ci``, ``p99_ci``) is ``[low, high]`` in ms: two order statistics of
    the runs that bracket the true quantile with probability >= `confidence` whatever the
    latency distribution (exact binomial, see `quantile_ranks`); None when there are too few
    runs for that (p50 needs 6 runs, p90 36, p99 368 at 95 %). The runs are assumed independent:
    a drifting board makes the interval too narrow, which is what interleaved rounds are for.
    """

    count: int
    min: float
    p50: float
    p90: float
    p99: float
    mean: float
    std: float
    p50_ci: Optional[List[float]] = None
    p90_ci: Optional[List[float]] = None
    p99_ci: Optional[List[float]] = None
    confidence: float = CONFIDENCE

    @classmethod
    def of(cls, latencies_ms: Sequence[float], confidence: float = CONFIDENCE) -> LatencySummary:
        """Summary of a list of latencies; percentiles by linear interpolation (numpy's default)."""
        if not latencies_ms:
            raise ValueError("no latencies to summarise")
        data = sorted(float(x) for x in latencies_ms)
        count = len(data)
        mean = sum(data) / count
        variance = sum((x - mean) ** 2 for x in data) / count
        return cls(
            count=count,
            min=data[0],
            p50=_percentile(data, 50),
            p90=_percentile(data, 90),
            p99=_percentile(data, 99),
            mean=mean,
            std=math.sqrt(variance),
            p50_ci=quantile_interval(data, 0.5, confidence),
            p90_ci=quantile_interval(data, 0.9, confidence),
            p99_ci=quantile_interval(data, 0.99, confidence),
            confidence=confidence,
        )

    def half_width(self) -> Optional[float]:
        """The p50 interval's larger half as a fraction of the p50 (None without an interval)."""
        if self.p50_ci is None or self.p50 <= 0:
            return None
        low, high = self.p50_ci
        return max(self.p50 - low, high - self.p50) / self.p50


def quantile_ranks(
    count: int, q: float, confidence: float = CONFIDENCE
) -> Optional[Tuple[int, int]]:
    """1-based ranks (j, k) with P(j <= B < k) >= confidence for B ~ Binomial(count, q).

    The sorted runs x_(j) <= x_(k) then bracket the true q-quantile with at least that
    probability (the number of runs below the quantile is B). Each tail gets at most
    (1 - confidence) / 2, so the pair is as symmetric as the discrete distribution allows.
    Stdlib only: the binomial terms come from lgamma, summed over the window around count*q
    that holds all but a negligible part of the mass. None when count is too small.
    """
    if count < 1 or not 0 < q < 1 or not 0 < confidence < 1:
        return None
    tail = (1.0 - confidence) / 2.0
    spread = math.sqrt(count * q * (1 - q))
    first = max(0, math.floor(count * q - 12 * spread - 2))
    last = min(count, math.ceil(count * q + 12 * spread + 2))
    log_norm = math.lgamma(count + 1)
    log_q, log_1q = math.log(q), math.log1p(-q)
    below = -1  # largest m with P(B <= m) <= tail (-1: none, P(B <= -1) = 0)
    above = None  # smallest m with P(B <= m) >= 1 - tail
    cumulative = 0.0
    for m in range(first, last + 1):
        cumulative += math.exp(
            log_norm
            - math.lgamma(m + 1)
            - math.lgamma(count - m + 1)
            + m * log_q
            + (count - m) * log_1q
        )
        if cumulative <= tail:
            below = m
        if cumulative >= 1.0 - tail:
            above = m
            break
    low, high = below + 1, (above + 1 if above is not None else count + 1)
    if low < 1 or high > count:
        return None
    return low, high


def quantile_interval(
    sorted_data: List[float], q: float, confidence: float = CONFIDENCE
) -> Optional[List[float]]:
    """[x_(j), x_(k)] of `quantile_ranks` from already sorted latencies, or None."""
    ranks = quantile_ranks(len(sorted_data), q, confidence)
    if ranks is None:
        return None
    return [sorted_data[ranks[0] - 1], sorted_data[ranks[1] - 1]]


def _percentile(sorted_data: List[float], q: float) -> float:
    if len(sorted_data) == 1:
        return sorted_data[0]
    position = (len(sorted_data) - 1) * q / 100.0
    lower = math.floor(position)
    upper = min(lower + 1, len(sorted_data) - 1)
    fraction = position - lower
    return sorted_data[lower] + (sorted_data[upper] - sorted_data[lower]) * fraction


@dataclass
class Warning_:
    """A named reason to distrust a number: shown, never hidden."""

    code: str
    message: str


@dataclass
class Measurement:
    """One thread count of one job, measured in its own child process.

    Times: ``import_ms`` importing the runtime; ``load_ms`` reading the model file;
    ``init_ms`` building the interpreter and ``allocate_tensors()`` (XNNPACK is applied
    here); ``first_invoke_ms`` the first ``invoke()``; ``latencies_ms`` every timed run
    after the warmup. Memory: ``rss_before_model_kb`` is the child's resident set after
    importing the runtime, ``peak_rss_kb`` its high-water mark at the end (VmHWM), so the
    model's own cost is roughly the difference. ``cpu_affinity`` is the CPU set the child
    actually ran on.

    ``rounds`` (interleaved or precision measurements): how many of the kept
    ``latencies_ms`` each round contributed, in order; round i of every measurement with the
    same Result.group and threads ran next to each other. ``processes``: how many of those
    rounds each fresh child process held, in order (a process per `rounds_per_process`
    rounds; generation i of every member ran at the same time). ``precision`` (only when
    options.precision was set): {"target", "reached", "half_width", "runs", "seconds"}.
    ``process_start`` (rounds only): how the fresh processes were started: "fork" (from the
    job's fork server, zygote.py), "spawn" (a new Python each, as without one) or "mixed"
    (the fork server failed part-way).
    """

    threads: int
    xnnpack: bool
    status: str = "ok"
    error: Optional[str] = None
    load_ms: Optional[float] = None
    init_ms: Optional[float] = None
    first_invoke_ms: Optional[float] = None
    latencies_ms: List[float] = field(default_factory=list)
    summary: Optional[LatencySummary] = None
    peak_rss_kb: Optional[int] = None
    outputs: Optional[Dict[str, Any]] = None
    error_kind: Optional[str] = None
    import_ms: Optional[float] = None
    rss_before_model_kb: Optional[int] = None
    cpu_affinity: Optional[List[int]] = None
    rounds: Optional[List[int]] = None
    precision: Optional[Dict[str, Any]] = None
    processes: Optional[List[int]] = None
    process_start: Optional[str] = None

    def __post_init__(self) -> None:
        """Keep at most MAX_KEPT_LATENCIES (see `thin`)."""
        self.thin(MAX_KEPT_LATENCIES)

    def thin(self, keep: int) -> None:
        """Keep at most `keep` latencies, evenly spaced in run order; the summary (made here
        if missing) stays over every run, and `rounds` counts what each round kept."""
        count = len(self.latencies_ms)
        if count > keep:
            if self.summary is None and self.status == "ok":
                self.summary = LatencySummary.of(self.latencies_ms)
            kept = [i * count // keep for i in range(keep)]
            self.latencies_ms = [self.latencies_ms[i] for i in kept]
            if self.rounds is not None and sum(self.rounds) == count:
                self.rounds = _thin_rounds(self.rounds, kept)

    def validate(self, where: str) -> Measurement:
        if self.status not in STATUSES:
            raise ProtocolError(f"{where}: measurement status must be 'ok' or 'error'")
        if self.rounds is not None:
            if not isinstance(self.rounds, list) or any(
                isinstance(r, bool) or not isinstance(r, int) or r < 0 for r in self.rounds
            ):
                raise ProtocolError(f"{where}: rounds must be a list of run counts >= 0")
            if sum(self.rounds) != len(self.latencies_ms):
                raise ProtocolError(
                    f"{where}: rounds add up to {sum(self.rounds)} runs but latencies_ms "
                    f"holds {len(self.latencies_ms)}"
                )
        if self.processes is not None and (
            self.rounds is None
            or not isinstance(self.processes, list)
            or any(isinstance(p, bool) or not isinstance(p, int) or p < 1 for p in self.processes)
            or sum(self.processes) != len(self.rounds)
        ):
            raise ProtocolError(
                f"{where}: processes must be round counts >= 1 adding up to len(rounds)"
            )
        if self.precision is not None:
            _validate_precision(self.precision, where)
        if self.process_start not in (None, "fork", "spawn", "mixed"):
            raise ProtocolError(f"{where}: process_start must be 'fork', 'spawn' or 'mixed'")
        return self


def kept_latencies(members: int, thread_counts: int) -> int:
    """How many latencies one measurement of a group job may keep (see MAX_KEPT_PER_RESULT)."""
    share = MAX_KEPT_PER_RESULT // max(1, members * thread_counts)
    return max(100, min(MAX_KEPT_LATENCIES, share))


def _thin_rounds(rounds: List[int], kept: List[int]) -> List[int]:
    """How many of the kept run indices (sorted) fall in each round."""
    thinned = []
    end = 0
    position = 0
    for size in rounds:
        end += size
        start = position
        while position < len(kept) and kept[position] < end:
            position += 1
        thinned.append(position - start)
    return thinned


PRECISION_FIELDS = {
    "target": (int, float),
    "reached": (bool,),
    "half_width": (int, float),
    "runs": (int,),
    "seconds": (int, float),
}


def _validate_precision(value: Any, where: str) -> None:
    if not isinstance(value, dict):
        raise ProtocolError(f"{where}: precision must be an object")
    _no_unknown(value, set(PRECISION_FIELDS), f"{where} precision")
    for key, types in PRECISION_FIELDS.items():
        _expect(value, key, types, f"{where} precision", optional=key == "half_width")


@dataclass
class Result:
    """What the agent reports for one job; `status` is "error" if the job could not run at all,
    "cancelled" if it was cancelled before it finished (then it holds no measurements)."""

    job_id: str
    model_sha256: str
    status: str
    error: Optional[str] = None
    label: str = ""
    agent_version: str = ""
    runtime: Dict[str, Any] = field(default_factory=dict)
    sparse_path: Dict[str, Any] = field(default_factory=dict)
    options: Optional[BenchOptions] = None
    measurements: List[Measurement] = field(default_factory=list)
    device: Dict[str, Any] = field(default_factory=dict)
    thermal: Dict[str, Any] = field(default_factory=dict)
    warnings: List[Warning_] = field(default_factory=list)
    started_at: float = 0.0
    finished_at: float = 0.0
    schema: int = SCHEMA_VERSION
    error_kind: Optional[str] = None
    group: Optional[str] = None
    members: List[Result] = field(default_factory=list)

    def to_dict(self) -> Dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        self.validate()
        return json.dumps(self.to_dict(), indent=2, sort_keys=True, allow_nan=False)

    def validate(self, _depth: int = 0) -> Result:
        validate_job_id(self.job_id)
        validate_sha256(self.model_sha256)
        where = f"result {self.job_id}"
        if self.status not in RESULT_STATUSES:
            raise ProtocolError(f"{where}: status must be 'ok', 'error' or 'cancelled'")
        if self.status != "ok" and not self.error:
            raise ProtocolError(f"{where}: an {self.status} result needs a message")
        if self.status == "cancelled" and self.measurements:
            raise ProtocolError(f"{where}: a cancelled result holds no measurements")
        if self.group is not None:
            validate_job_id(self.group)
        for index, m in enumerate(self.measurements):
            m.validate(f"{where} measurement {index}")
        if not isinstance(self.members, list):
            raise ProtocolError(f"{where}: members must be a list")
        if self.members:
            if _depth > 0:
                raise ProtocolError(f"{where}: a group member cannot have members of its own")
            if len(self.members) > MAX_MEMBERS:
                raise ProtocolError(
                    f"{where}: at most {MAX_MEMBERS} members, got {len(self.members)}"
                )
            seen = set()
            for member in self.members:
                if not isinstance(member, Result):
                    raise ProtocolError(f"{where}: each member must be a Result")
                member.validate(_depth + 1)
                if member.group != self.job_id:
                    raise ProtocolError(
                        f"{where}: member {member.job_id} names group {member.group!r}; "
                        f"it must be {self.job_id!r}"
                    )
                if member.job_id in seen or member.job_id == self.job_id:
                    raise ProtocolError(f"{where}: member id {member.job_id!r} is not unique")
                seen.add(member.job_id)
        return self

    @classmethod
    def from_json(cls, text: Any) -> Result:
        if isinstance(text, (str, bytes, bytearray)) and len(text) > MAX_RESULT_BYTES:
            raise ProtocolError(
                f"result is larger than {MAX_RESULT_BYTES} bytes ({len(text)}); "
                "the agent that wrote it does not bound what a result holds (upgrade it)"
            )
        return cls._from_object(_load_object(text, "result"), "result").validate()

    @classmethod
    def _from_object(cls, obj: Any, what: str) -> Result:
        if not isinstance(obj, dict):
            raise ProtocolError(f"{what} must be a JSON object")
        _no_unknown(obj, set(cls.__dataclass_fields__), what)
        job_id = validate_job_id(_expect(obj, "job_id", (str,), what))
        where = f"{what} {job_id}"
        options = obj.get("options")
        measurements = []
        for index, raw in enumerate(
            _expect(obj, "measurements", (list,), where, optional=True) or []
        ):
            measurements.append(_measurement_from_dict(raw, f"{where} measurement {index}"))
        warnings = []
        for raw in _expect(obj, "warnings", (list,), where, optional=True) or []:
            if not isinstance(raw, dict):
                raise ProtocolError(
                    f"{where}: each warning must be an object with code and message"
                )
            _no_unknown(raw, {"code", "message"}, f"{where} warning")
            warnings.append(
                Warning_(
                    code=_expect(raw, "code", (str,), where),
                    message=_expect(raw, "message", (str,), where),
                )
            )
        result = cls(
            job_id=job_id,
            model_sha256=validate_sha256(_expect(obj, "model_sha256", (str,), where)),
            status=_expect(obj, "status", (str,), where),
            error=_expect(obj, "error", (str,), where, optional=True),
            label=_expect(obj, "label", (str,), where, optional=True) or "",
            agent_version=_expect(obj, "agent_version", (str,), where, optional=True) or "",
            runtime=_expect(obj, "runtime", (dict,), where, optional=True) or {},
            sparse_path=_expect(obj, "sparse_path", (dict,), where, optional=True) or {},
            options=BenchOptions.from_dict(options, f"{where} options")
            if options is not None
            else None,
            measurements=measurements,
            device=_expect(obj, "device", (dict,), where, optional=True) or {},
            thermal=_expect(obj, "thermal", (dict,), where, optional=True) or {},
            warnings=warnings,
            started_at=float(_expect(obj, "started_at", (int, float), where, optional=True) or 0.0),
            finished_at=float(
                _expect(obj, "finished_at", (int, float), where, optional=True) or 0.0
            ),
            schema=_member_schema(obj, where),
            error_kind=_expect(obj, "error_kind", (str,), where, optional=True),
            group=_expect(obj, "group", (str,), where, optional=True),
            members=[
                cls._from_object(raw, f"{where} member")
                for raw in _expect(obj, "members", (list,), where, optional=True) or []
            ],
        )
        return result


def _member_schema(obj: Dict[str, Any], where: str) -> int:
    schema = obj.get("schema", SCHEMA_VERSION)
    if schema != SCHEMA_VERSION or isinstance(schema, bool):
        raise ProtocolError(f"{where}: schema {schema!r} is not {SCHEMA_VERSION}")
    return SCHEMA_VERSION


def _measurement_from_dict(raw: Any, where: str) -> Measurement:
    if not isinstance(raw, dict):
        raise ProtocolError(f"{where} must be an object")
    _no_unknown(raw, set(Measurement.__dataclass_fields__), where)
    summary_raw = _expect(raw, "summary", (dict,), where, optional=True)
    summary = None
    if summary_raw is not None:
        _no_unknown(summary_raw, set(LatencySummary.__dataclass_fields__), f"{where} summary")
        summary = LatencySummary(
            count=_expect(summary_raw, "count", (int,), f"{where} summary"),
            **{
                k: float(_expect(summary_raw, k, (int, float), f"{where} summary"))
                for k in ("min", "p50", "p90", "p99", "mean", "std")
            },
            p50_ci=_interval(summary_raw, "p50_ci", f"{where} summary"),
            p90_ci=_interval(summary_raw, "p90_ci", f"{where} summary"),
            p99_ci=_interval(summary_raw, "p99_ci", f"{where} summary"),
            confidence=float(
                _expect(summary_raw, "confidence", (int, float), f"{where} summary", optional=True)
                or CONFIDENCE
            ),
        )
    latencies = _expect(raw, "latencies_ms", (list,), where, optional=True) or []
    for value in latencies:
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or not math.isfinite(value)
        ):
            raise ProtocolError(f"{where}: latencies_ms must hold numbers")

    def number(key: str) -> Optional[float]:
        value = _expect(raw, key, (int, float), where, optional=True)
        return None if value is None else float(value)

    return Measurement(
        threads=_expect(raw, "threads", (int,), where),
        xnnpack=_expect(raw, "xnnpack", (bool,), where),
        status=_expect(raw, "status", (str,), where, optional=True) or "ok",
        error=_expect(raw, "error", (str,), where, optional=True),
        load_ms=number("load_ms"),
        init_ms=number("init_ms"),
        first_invoke_ms=number("first_invoke_ms"),
        latencies_ms=[float(v) for v in latencies],
        summary=summary,
        peak_rss_kb=_expect(raw, "peak_rss_kb", (int,), where, optional=True),
        outputs=_expect(raw, "outputs", (dict,), where, optional=True),
        error_kind=_expect(raw, "error_kind", (str,), where, optional=True),
        import_ms=number("import_ms"),
        rss_before_model_kb=_expect(raw, "rss_before_model_kb", (int,), where, optional=True),
        cpu_affinity=_cpu_list(raw, where),
        rounds=_expect(raw, "rounds", (list,), where, optional=True),
        precision=_expect(raw, "precision", (dict,), where, optional=True),
        processes=_expect(raw, "processes", (list,), where, optional=True),
        process_start=_expect(raw, "process_start", (str,), where, optional=True),
    ).validate(where)


def _interval(raw: Dict[str, Any], key: str, where: str) -> Optional[List[float]]:
    value = _expect(raw, key, (list,), where, optional=True)
    if value is None:
        return None
    if (
        len(value) != 2
        or any(
            isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
            for v in value
        )
        or value[0] > value[1]
    ):
        raise ProtocolError(f"{where}: {key} must be [low, high] in ms")
    return [float(value[0]), float(value[1])]


def _cpu_list(raw: Dict[str, Any], where: str) -> Optional[List[int]]:
    cpus = _expect(raw, "cpu_affinity", (list,), where, optional=True)
    if cpus is None:
        return None
    for cpu in cpus:
        if isinstance(cpu, bool) or not isinstance(cpu, int) or cpu < 0:
            raise ProtocolError(f"{where}: cpu_affinity must hold CPU numbers")
    return list(cpus)


def error_result(
    job_id: str, model_sha256: str, message: str, status: str = "error", **extra: Any
) -> Result:
    """A result that says the job could not run (or was cancelled), with one line saying why."""
    first_line = (message.strip().splitlines() or ["unknown error"])[0][:500]
    now = time.time()
    return Result(
        job_id=job_id,
        model_sha256=model_sha256,
        status=status,
        error=first_line,
        started_at=extra.pop("started_at", now),
        finished_at=now,
        **extra,
    )


def sha256_in(text: Optional[str]) -> str:
    """The model_sha256 a broken job file names, if it names a valid one."""
    try:
        obj = json.loads(text or "")
    except (ValueError, RecursionError):
        return UNKNOWN_SHA256
    value = obj.get("model_sha256") if isinstance(obj, dict) else None
    return value if isinstance(value, str) and SHA256_PATTERN.match(value) else UNKNOWN_SHA256
