"""The durable on-disk queue of docs/agent-contract.md: models, inputs, jobs and results.

Every state change is a rename inside one filesystem, so a crash at any instant leaves each
job in exactly one place: queued/, running/, or results/. Files are written to a temp name
and renamed (integrity.atomic_write_*); directories are 0700 and files 0600, because the
spool belongs to one user. No symlink inside the spool is followed (safe_files): a link, FIFO
or device planted in it is refused by name, and a loose directory mode is tightened.

A model or inputs file counts as present only when it was verified: admission hashes it and
records its size and mtime in `verified/<dir>-<file>`; a file that no longer matches its record is
hashed again, and reported missing (so deploy sends it again) when the hash is wrong.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import time
from typing import Any, BinaryIO, Dict, List, Optional, Set, Tuple

from .errors import AgentError, BadInput, NotFound
from .file_kinds import inputs_suffix
from .integrity import atomic_write_text, sha256_bytes, sha256_file
from .protocol import (
    JOB_ID_PATTERN,
    SHA256_PATTERN,
    Job,
    ProtocolError,
    Result,
    validate_job_id,
    validate_sha256,
)
from .safe_files import check_directory, open_regular, read_capped


def _log() -> Any:
    """The agent's logger; `logging` is imported only when a line is logged (start-up speed)."""
    import logging

    return logging.getLogger("edgeprune.agent")


SUBDIRS = (
    "incoming",
    "models",
    "inputs",
    "jobs/queued",
    "jobs/running",
    "jobs/rejected",
    "jobs/attempts",
    "jobs/cancel",
    "results",
    "results/acked",
    "logs",
    "verified",
    "progress",
)
MAX_JOB_BYTES = 1 << 20
MAX_RESULT_BYTES = 64 << 20
PART_GRACE_S = 86400.0
"""An upload part untouched this long is removed: a day, so a deploy cut off in the evening
(a dropped link, Ctrl-C, a crashed host) still resumes from its part the next morning."""
PART_BUSY_S = 10.0
PART_TOKEN_PATTERN = re.compile(r"^[0-9a-f]{6,32}$")
ACKED_KEEP_S = 7 * 86400
_CHUNK = 1 << 20


def default_spool_root() -> str:
    return os.environ.get("EDGEPRUNE_SPOOL") or os.path.join(os.path.expanduser("~"), ".edgeprune")


class Spool:
    """One spool directory; every method names the file it touches in its errors."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(os.path.expanduser(root))

    def path(self, *parts: str) -> str:
        return os.path.join(self.root, *parts)

    # ------------------------------------------------------------------ setup

    def ensure(self) -> Spool:
        """Create the layout (0700) if missing; refuse a spool that belongs to someone else."""
        try:
            if not os.path.isdir(self.root):
                os.makedirs(self.root, mode=0o700)
                os.chmod(self.root, 0o700)
            owner = os.stat(self.root).st_uid
            if owner != os.getuid():
                raise AgentError(
                    f"spool {self.root} belongs to uid {owner}, not to this user ({os.getuid()})"
                )
            self.check()
            for sub in SUBDIRS:
                full = self.path(sub)
                if not os.path.lexists(full):
                    os.makedirs(full, mode=0o700, exist_ok=True)
                    os.chmod(full, 0o700)
                    check_directory(full, os.getuid())
        except OSError as exc:
            raise AgentError(
                f"cannot create the spool at {self.root}: {exc.strerror or exc}; "
                "pass --spool DIR (or set EDGEPRUNE_SPOOL) to a writable place"
            ) from None
        return self

    def check(self) -> Spool:
        """Refuse a layout that leads out of the spool (AgentError naming the entry).

        The root may itself be a link (a spool on a bigger disk); nothing below it may be.
        """
        if os.path.isdir(self.root):
            uid = os.getuid()
            check_directory(os.path.realpath(self.root), uid)
            for sub in SUBDIRS:
                if os.path.lexists(self.path(sub)):
                    check_directory(self.path(sub), uid)
        return self

    def exists(self) -> bool:
        return os.path.isdir(self.path("jobs", "queued"))

    def free_bytes(self) -> Optional[int]:
        target = self.root if os.path.isdir(self.root) else os.path.dirname(self.root)
        try:
            stats = os.statvfs(target)
        except OSError:
            return None
        return stats.f_bavail * stats.f_frsize

    # ------------------------------------------------------------------ models and inputs

    def model_path(self, sha256: str) -> str:
        return self.path("models", validate_sha256(sha256) + ".tflite")

    def inputs_path(self, name: str) -> str:
        return self.path("inputs", os.path.basename(name))

    def has_model(self, sha256: str) -> bool:
        return self.verified(self.model_path(sha256), sha256)

    def has_inputs(self, name: str) -> bool:
        return self.verified(self.inputs_path(name), os.path.basename(name).split(".")[0])

    def verified(self, path: str, sha256: str) -> bool:
        """Is the file there with this content? Its admission record, else its hash."""
        try:
            info = os.lstat(path)
        except OSError:
            return False
        if not stat.S_ISREG(info.st_mode):
            return False
        try:
            record = read_capped(self._marker(path), 256, self.root).decode("ascii", "replace")
        except (OSError, AgentError):
            record = ""
        if record.strip() == _fingerprint(info):
            return True
        try:
            if sha256_file(path) != sha256:
                _log().warning("%s does not hash to its name: reported missing", path)
                return False
        except OSError:
            return False
        self._record(path)
        return True

    def _marker(self, path: str) -> str:
        """verified/models-<name> for models/<name> (kept apart: models/ holds models only)."""
        kind = os.path.basename(os.path.dirname(path))
        return self.path("verified", f"{kind}-{os.path.basename(path)}")

    def _record(self, path: str) -> None:
        """Write the marker of a file whose hash was just checked."""
        with contextlib.suppress(OSError):
            atomic_write_text(self._marker(path), _fingerprint(os.lstat(path)) + "\n")

    def clean_stale_parts(self, grace_s: float = PART_GRACE_S) -> int:
        """Delete incoming/ uploads untouched for `grace_s` that no process holds open."""
        cutoff = time.time() - grace_s
        removed = 0
        holders = _Holders()
        for full, info in _part_files(self.path("incoming")):
            if info.st_mtime >= cutoff or holders.hold(info):
                continue
            with contextlib.suppress(OSError):
                os.unlink(full)
                removed += 1
                _log().info(
                    "removed stale upload incoming/%s (untouched for %d s)",
                    os.path.basename(full),
                    grace_s,
                )
        return removed

    def claim_part(self, sha256: str, token: str) -> Dict[str, object]:
        """Take over the longest idle upload part of `sha256` as `incoming/<sha256>.<token>.part`.

        The rename is atomic, so of two commands that pick the same part only one gets it; a
        part some process holds open and wrote in the last PART_BUSY_S (an upload in progress)
        is left alone unless it already carries `token` (the caller's own, after a dropped
        link). One held open but idle longer is a writer whose link died unnoticed: it is
        taken (every writer of a part writes the same bytes at the same offsets, and admit
        checks the whole hash). Other idle parts of this
        sha256 are deleted: only one is worth keeping. The document gives the claimed part's
        length and the sha256 of its bytes, which the host compares with its file's prefix.
        """
        validate_sha256(sha256)
        if not isinstance(token, str) or not PART_TOKEN_PATTERN.match(token):
            raise BadInput(f"--claim {token!r} is not a part token (6-32 lowercase hex digits)")
        directory = self.path("incoming")
        mine = os.path.join(directory, f"{sha256}.{token}.part")
        candidates: List[Tuple[int, str]] = []
        holders = _Holders()
        busy_since = time.time() - PART_BUSY_S
        for full, info in _part_files(directory, sha256 + "."):
            if full != mine and info.st_mtime > busy_since and holders.hold(info):
                continue  # another command is writing it
            candidates.append((info.st_size, full))
        claimed = False
        discarded = 0
        for _size, full in sorted(candidates, reverse=True):
            if claimed:
                _unlink(full)
                discarded += 1
                continue
            try:
                if full != mine:
                    os.rename(full, mine)  # atomic: a racing command's rename fails here
                claimed = True
            except FileNotFoundError:
                continue  # someone else claimed it first
        length = 0
        digest = sha256_bytes(b"")
        if claimed:
            with os.fdopen(open_regular(mine, root=self.root), "rb") as handle:
                length, digest = _hash_stream(handle)
        return {"path": mine, "length": length, "sha256": digest, "discarded": discarded}

    def admit(self, file: str, sha256: str, kind: str = "models") -> Dict[str, object]:
        """Move an upload from incoming/ to models/ (or inputs/) once its hash is checked."""
        if not isinstance(sha256, str) or not SHA256_PATTERN.match(sha256):
            raise BadInput(f"--sha256 {sha256!r} is not a sha256 (64 lowercase hex digits)")
        upload = os.path.abspath(file)
        incoming = os.path.realpath(self.path("incoming"))
        if os.path.realpath(os.path.dirname(upload)) != incoming:
            raise BadInput(f"{file} is not inside {incoming}/: admit only takes uploads from there")
        try:
            info = os.lstat(upload)
        except OSError:
            raise BadInput(f"{file} does not exist") from None
        if not stat.S_ISREG(info.st_mode):
            raise BadInput(
                f"{file} is not a regular file (a symlink or directory cannot be admitted)"
            )
        actual = sha256_file(upload)
        if actual != sha256:
            _unlink(upload)
            raise AgentError(
                f"{os.path.basename(file)} has sha256 {actual}, not {sha256}: the upload is "
                "corrupt or incomplete and was deleted; upload it again"
            )
        if kind == "models":
            target = self.model_path(sha256)
        else:
            suffix = inputs_suffix(upload)
            if suffix is None:
                _unlink(upload)
                raise BadInput(f"{file} is neither a .npy nor a .npz file; it was deleted")
            target = self.path("inputs", sha256 + suffix)
        already = self.verified(target, sha256)
        if already:
            _unlink(upload)
        else:
            os.chmod(upload, 0o600)
            os.replace(upload, target)
            self._record(target)
        return {"sha256": sha256, "path": target, "admitted": True, "already_present": already}

    def import_model(self, source: str) -> Tuple[str, bool]:
        """Copy a model file in by its sha256: (sha256, already_present)."""
        sha, tmp = self._copy_in(source)
        target = self.model_path(sha)
        return sha, self._place(tmp, target)

    def import_inputs(self, source: str) -> Tuple[str, bool]:
        """Copy a .npy/.npz in by its sha256: ('<sha256>.npy|.npz', already_present)."""
        suffix = inputs_suffix(source)
        if suffix is None:
            raise BadInput(f"--inputs {source} is neither a .npy nor a .npz file")
        sha, tmp = self._copy_in(source)
        name = sha + suffix
        return name, self._place(tmp, self.path("inputs", name))

    def _copy_in(self, source: str) -> Tuple[str, str]:
        import hashlib

        if not os.path.isfile(source):
            raise BadInput(f"{source} does not exist or is not a file")
        digest = hashlib.sha256()
        import tempfile  # only when a file is copied in: start-up speed

        fd, tmp = tempfile.mkstemp(prefix=".copy-", dir=self.path("incoming"))
        try:
            with open(source, "rb") as src, os.fdopen(fd, "wb") as dst:
                for chunk in iter(lambda: src.read(_CHUNK), b""):
                    digest.update(chunk)
                    dst.write(chunk)
                dst.flush()
                os.fsync(dst.fileno())
            os.chmod(tmp, 0o600)
        except OSError as exc:
            _unlink(tmp)
            raise AgentError(
                f"cannot copy {source} into the spool: {exc.strerror or exc}"
            ) from None
        return digest.hexdigest(), tmp

    def _place(self, tmp: str, target: str) -> bool:
        if self.verified(target, os.path.basename(target).split(".")[0]):
            _unlink(tmp)
            return True
        os.replace(tmp, target)
        self._record(target)
        return False

    # ------------------------------------------------------------------ jobs

    def _job_file(self, state: str, job_id: str) -> str:
        return self.path("jobs", state, validate_job_id(job_id) + ".json")

    def job_path(self, state: str, job_id: str) -> str:
        """jobs/<state>/<id>.json (state: queued or running)."""
        return self._job_file(state, job_id)

    def result_file(self, job_id: str, acked: bool = False) -> str:
        name = validate_job_id(job_id) + ".json"
        return self.path("results", "acked", name) if acked else self.path("results", name)

    def state_of(self, job_id: str) -> Optional[str]:
        """queued | running | done | acked | None, checked in the order jobs move."""
        if os.path.exists(self._job_file("queued", job_id)):
            return "queued"
        if os.path.exists(self._job_file("running", job_id)):
            return "running"
        if os.path.exists(self.result_file(job_id)):
            return "done"
        if os.path.exists(self.result_file(job_id, acked=True)):
            return "acked"
        return None

    def queue(self, job: Job) -> None:
        try:
            text = job.to_json()
        except ProtocolError as exc:
            raise BadInput(str(exc)) from None
        state = self.state_of(job.id)
        if state is not None:
            raise BadInput(
                f"job id {job.id} is already used in this spool ({state}); pick another --id"
            )
        atomic_write_text(self._job_file("queued", job.id), text)

    def list_ids(self, state: str) -> List[str]:
        """Job ids in jobs/<state>/ (or results/), oldest first."""
        directory = self.path("results") if state == "results" else self.path("jobs", state)
        entries = []
        try:
            names = os.listdir(directory)
        except OSError:
            return []
        for name in names:
            stem = name[:-5]
            if name.endswith(".json") and JOB_ID_PATTERN.match(stem):
                with contextlib.suppress(OSError):
                    entries.append((os.stat(os.path.join(directory, name)).st_mtime, stem))
        return [stem for _, stem in sorted(entries)]

    def claim_next(self) -> Optional[str]:
        """Move the oldest queued job to running/ with one rename; reject misnamed files."""
        queued = self.path("jobs", "queued")
        try:
            names = os.listdir(queued)
        except OSError:
            return None
        for name in names:
            if name.startswith("."):
                continue  # an atomic write in progress
            if not name.endswith(".json") or not JOB_ID_PATTERN.match(name[:-5]):
                self.reject(name, "its name is not '<job id>.json'")
        for job_id in self.list_ids("queued"):
            if os.path.lexists(self._job_file("running", job_id)) or self.has_result(job_id):
                self.reject(job_id + ".json", "a job with this id already ran or is running")
                continue
            try:
                os.rename(self._job_file("queued", job_id), self._job_file("running", job_id))
            except FileNotFoundError:
                continue
            return job_id
        return None

    def read_claimed(self, job_id: str) -> Tuple[Optional[str], Optional[str]]:
        """(text, None) of a running job file, or (None, why it cannot be read)."""
        return self.read_job_file(self._job_file("running", job_id), job_id)

    def read_job_file(self, path: str, job_id: str) -> Tuple[Optional[str], Optional[str]]:
        """(text, None) of a job file at `path`, or (None, why it cannot be read)."""
        try:
            fd = open_regular(path, root=self.root)
        except OSError as exc:
            return None, f"job file {job_id}.json cannot be opened ({exc.strerror}; a symlink?)"
        except AgentError:
            if os.path.islink(path):
                return None, f"job file {job_id}.json cannot be opened (it is a symlink)"
            return None, f"job file {job_id}.json is not a regular file"
        with os.fdopen(fd, "rb") as handle:
            data = handle.read(MAX_JOB_BYTES + 1)
        if len(data) > MAX_JOB_BYTES:
            return None, f"job file {job_id}.json is larger than {MAX_JOB_BYTES} bytes"
        return data.decode("utf-8", "replace"), None

    def requeue(self, job_id: str) -> None:
        os.rename(self._job_file("running", job_id), self._job_file("queued", job_id))

    def finish(self, job_id: str) -> None:
        """The result is on disk: forget the running job, its attempt count and cancel mark
        (its progress stays until `ack`: a `wait` may still hand over the final count)."""
        _unlink(self._job_file("running", job_id))
        _unlink(self.path("jobs", "attempts", job_id))
        _unlink(self._cancel_mark(job_id))

    # ------------------------------------------------------------------ cancelling

    def _cancel_mark(self, job_id: str) -> str:
        return self.path("jobs", "cancel", validate_job_id(job_id))

    def taken_file(self, job_id: str) -> str:
        """Where `cancel` moves a queued job it takes out of the queue (a dot name: never an
        id, never a mark)."""
        return self.path("jobs", "cancel", f".job-{validate_job_id(job_id)}.json")

    def mark_cancelled(self, job_id: str) -> None:
        """Ask whoever runs (or will claim) this job to stop it: jobs/cancel/<id>, atomically."""
        atomic_write_text(self._cancel_mark(job_id), f"{time.time():.3f}\n")

    def cancel_requested(self, job_id: str) -> bool:
        return os.path.lexists(self._cancel_mark(job_id))

    def take_queued(self, job_id: str) -> bool:
        """Take a queued job out of the queue with one rename; False if it was not queued (a
        daemon claimed it first, or it never was)."""
        try:
            os.rename(self._job_file("queued", job_id), self.taken_file(job_id))
        except FileNotFoundError:
            return False
        return True

    def drop_taken(self, job_id: str) -> None:
        """Its cancelled result is written: forget the taken job file and the mark."""
        _unlink(self.taken_file(job_id))
        _unlink(self._cancel_mark(job_id))

    def reject(self, name: str, reason: str) -> None:
        """Move a queued file that cannot become a result aside, with a log line."""
        source = os.path.join(self.path("jobs", "queued"), name)
        target = os.path.join(self.path("jobs", "rejected"), name)
        if os.path.lexists(target):
            target += f".{int(time.time() * 1000)}"
        try:
            os.rename(source, target)
        except OSError as exc:
            _log().error("cannot move rejected job file %r aside: %s", name, exc.strerror)
            return
        _log().warning("rejected job file %r: %s (moved to jobs/rejected/)", name, reason)

    def attempts(self, job_id: str) -> int:
        try:
            text = read_capped(
                self.path("jobs", "attempts", validate_job_id(job_id)), 64, self.root
            )
            return int(text.strip() or 0)
        except (OSError, ValueError, AgentError):
            return 0

    def clear_stale_attempt_writes(self) -> int:
        """Remove half-written attempt counts (`.tmp-*`) left by an agent killed mid-write.

        Only the daemon writes attempt counts, and only one daemon runs per spool, so at its
        start nothing else can be writing there."""
        directory = self.path("jobs", "attempts")
        try:
            names = os.listdir(directory)
        except OSError:
            return 0
        stale = [n for n in names if n.startswith(".tmp-")]
        for name in stale:
            _unlink(os.path.join(directory, name))
        return len(stale)

    def set_attempts(self, job_id: str, count: int) -> None:
        atomic_write_text(self.path("jobs", "attempts", validate_job_id(job_id)), f"{count}\n")

    # ------------------------------------------------------------------ results

    def has_result(self, job_id: str) -> bool:
        return os.path.exists(self.result_file(job_id)) or os.path.exists(
            self.result_file(job_id, acked=True)
        )

    def write_result(self, result: Result) -> None:
        self.check()  # results/ swapped for a link while the job ran: refuse, write nothing
        atomic_write_text(self.result_file(result.job_id), result.to_json())

    def read_result(self, job_id: str) -> str:
        for acked in (False, True):
            path = self.result_file(job_id, acked)
            try:
                return read_capped(path, MAX_RESULT_BYTES, self.root).decode("utf-8", "replace")
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise AgentError(f"cannot read {path}: {exc.strerror or exc}") from None
        raise NotFound(f"no result for job {job_id} yet")

    def ack(self, job_id: str) -> None:
        source = self.result_file(job_id)
        target = self.result_file(job_id, acked=True)
        try:
            os.replace(source, target)
        except FileNotFoundError:
            if os.path.exists(target):
                return  # already acknowledged: acking twice is fine
            raise NotFound(f"no result for job {job_id} to acknowledge") from None
        with contextlib.suppress(OSError):
            os.utime(target)
        _unlink(self.path("progress", f"{job_id}.json"))
        self.prune_acked()

    def prune_acked(self, keep_s: float = ACKED_KEEP_S) -> int:
        directory = self.path("results", "acked")
        removed = 0
        cutoff = time.time() - keep_s
        try:
            names = os.listdir(directory)
        except OSError:
            return 0
        for name in names:
            full = os.path.join(directory, name)
            with contextlib.suppress(OSError):
                if os.stat(full).st_mtime < cutoff:
                    os.unlink(full)
                    removed += 1
        return removed


def _fingerprint(info: os.stat_result) -> str:
    return f"{info.st_size} {info.st_mtime_ns}"


def _part_files(directory: str, prefix: str = "") -> List[Tuple[str, os.stat_result]]:
    """(path, lstat) of each regular `<prefix>*.part` file in `directory` ([] if unreadable)."""
    try:
        names = sorted(os.listdir(directory))
    except OSError:
        return []
    found: List[Tuple[str, os.stat_result]] = []
    for name in names:
        if not (name.startswith(prefix) and name.endswith(".part")):
            continue
        full = os.path.join(directory, name)
        try:
            info = os.lstat(full)
        except OSError:
            continue
        if stat.S_ISREG(info.st_mode):
            found.append((full, info))
    return found


class _Holders:
    """Whether some process holds a file open; /proc is read once, at the first question."""

    def __init__(self) -> None:
        self._held: Optional[Set[Tuple[int, int]]] = None

    def hold(self, info: os.stat_result) -> bool:
        if self._held is None:
            self._held = _open_files()
        return (info.st_dev, info.st_ino) in self._held


def _open_files() -> Set[Tuple[int, int]]:
    """(device, inode) of every file our processes hold open, from /proc (empty elsewhere)."""
    held: Set[Tuple[int, int]] = set()
    try:
        pids = os.listdir("/proc")
    except OSError:
        return held
    for pid in pids:
        if not pid.isdigit():
            continue
        fd_dir = os.path.join("/proc", pid, "fd")
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            with contextlib.suppress(OSError):
                info = os.stat(os.path.join(fd_dir, fd))
                held.add((info.st_dev, info.st_ino))
    return held


def _hash_stream(handle: BinaryIO) -> Tuple[int, str]:
    """(bytes read, their sha256) of an open file, read in chunks."""
    import hashlib

    digest = hashlib.sha256()
    length = 0
    for chunk in iter(lambda: handle.read(_CHUNK), b""):
        digest.update(chunk)
        length += len(chunk)
    return length, digest.hexdigest()


def _unlink(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
