"""Fuzz driver: mutate real .tflite models and feed each mutant to the model readers.

Run as a child process by test_tflite_fuzz.py, so a segfault or an abort ends this process
(the parent sees the signal), not the test run. Before each mutant it writes the mutant's
number and description to PROGRESS, so the parent can name the one that killed it.

    python fuzz_tflite_driver.py SEED COUNT PROGRESS WORKDIR MODEL...

Readers: edgeprune.workflows.inspection.inspect_tflite(path) (the host's inspector: its
flatbuffer reader and XNNPACK's verdict) and device_agents.tflite_file.inspect_model(path)
(the agent's pre-run check).
Prints one JSON summary: counts per outcome and every unexpected exception or hang.
"""

from __future__ import annotations

import json
import os
import random
import signal
import struct
import sys
import time
import traceback
from pathlib import Path

PER_CALL_S = 20.0
NASTY_INTS = [0, 1, 4, -1, -4, 0x7FFFFFFF, -0x80000000, 0xFFFF, 0x10000, 0x7FFF]


class Hang(Exception):
    pass


def _alarm(_signum, _frame):
    raise Hang()


def mutate(data: bytes, rng: random.Random, others: list[bytes]) -> tuple[bytes, str]:
    """One mutant of `data` and a short description of what was done."""
    out = bytearray(data)
    size = len(out)
    kind = rng.choice(
        ["bitflip", "bytes", "truncate", "int32", "offset", "splice", "insert", "delete", "root"]
    )
    if kind == "bitflip":
        spots = [rng.randrange(size * 8) for _ in range(rng.randint(1, 8))]
        for bit in spots:
            out[bit // 8] ^= 1 << (bit % 8)
        return bytes(out), f"bitflip {spots}"
    if kind == "bytes":
        at, length = rng.randrange(size), rng.randint(1, 16)
        out[at : at + length] = bytes(rng.randrange(256) for _ in range(length))[: size - at]
        return bytes(out), f"bytes at {at} len {length}"
    if kind == "truncate":
        length = rng.randrange(size)
        return bytes(out[:length]), f"truncate to {length}"
    if kind in ("int32", "offset"):
        at = rng.randrange(0, max(1, size - 4)) & ~3
        if kind == "int32":
            value = rng.choice(NASTY_INTS)
        else:  # a plausible offset that points somewhere else in the file (or just past it)
            value = rng.choice(
                [size, size - 4, size + 4, rng.randrange(size), -rng.randrange(size)]
            )
        out[at : at + 4] = struct.pack("<i", max(-(2**31), min(2**31 - 1, value)))
        return bytes(out), f"{kind} {value} at {at}"
    if kind == "splice":
        donor = rng.choice(others)
        src, dst, length = rng.randrange(len(donor)), rng.randrange(size), rng.randint(4, 256)
        chunk = donor[src : src + length]
        out[dst : dst + len(chunk)] = chunk
        return bytes(out[:size]), f"splice {len(chunk)} bytes from {src} to {dst}"
    if kind == "insert":
        at, length = rng.randrange(size), rng.randint(1, 64)
        out[at:at] = bytes(rng.randrange(256) for _ in range(length))
        return bytes(out), f"insert {length} at {at}"
    if kind == "delete":
        at, length = rng.randrange(size), rng.randint(1, 64)
        del out[at : at + length]
        return bytes(out), f"delete {length} at {at}"
    value = rng.choice([*NASTY_INTS, size, size - 4])  # the root table offset itself
    out[0:4] = struct.pack("<i", max(-(2**31), min(2**31 - 1, value)))
    return bytes(out), f"root offset {value}"


def main(argv: list[str]) -> int:
    seed, count = int(argv[0]), int(argv[1])
    progress, workdir = Path(argv[2]), Path(argv[3])
    models = [Path(p).read_bytes() for p in argv[4:]]
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    from device_agents.tflite_file import ModelFileError
    from device_agents.tflite_file import inspect_model as agent_inspect
    from edgeprune.errors import UserError
    from edgeprune.workflows.inspection import inspect_tflite

    readers = [
        ("edgeprune.workflows.inspection.inspect_tflite", inspect_tflite, (UserError,)),
        (
            "device_agents.tflite_file.inspect_model",
            lambda p: agent_inspect(str(p)),
            (ModelFileError,),
        ),
    ]
    rng = random.Random(seed)
    signal.signal(signal.SIGALRM, _alarm)
    target = workdir / "mutant.tflite"
    counts: dict[str, int] = {}
    problems: list[dict[str, object]] = []
    started = time.monotonic()
    fd = os.open(progress, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    for index in range(count):
        base = rng.randrange(len(models))
        mutant, what = mutate(models[base], rng, models)
        for _ in range(rng.choice([0, 0, 1, 2])):  # sometimes stack several mutations
            if len(mutant) >= 8:
                mutant, more = mutate(mutant, rng, models)
                what += f"; {more}"
        target.write_bytes(mutant)
        for name, reader, expected in readers:
            note = json.dumps({"index": index, "model": base, "mutation": what, "reader": name})
            os.pwrite(fd, (note + "\n").ljust(4096).encode()[:4096], 0)
            signal.setitimer(signal.ITIMER_REAL, PER_CALL_S)
            try:
                reader(target)
                outcome = "parsed"
            except expected as exc:
                outcome = "rejected" if str(exc).strip() and "\n" not in str(exc) else "bad message"
                if outcome == "bad message":
                    problems.append({"index": index, "reader": name, "mutation": what,
                                     "error": repr(str(exc))[:300]})  # fmt: skip
            except Hang:
                outcome = "hang"
                problems.append({"index": index, "reader": name, "mutation": what, "error": "hang"})
            except Exception as exc:  # the finding: anything but the reader's own error
                outcome = "unexpected"
                kept = workdir / f"finding-{index}.tflite"
                if len(problems) < 20:
                    kept.write_bytes(mutant)  # the mutant itself, to reproduce the finding
                frame = traceback.extract_tb(exc.__traceback__)[-1]
                where = f"{os.path.relpath(frame.filename)}:{frame.lineno}"
                problems.append(
                    {"index": index, "reader": name, "mutation": what, "file": str(kept),
                     "where": where, "error": f"{type(exc).__name__}: {str(exc)[:200]}"}
                )  # fmt: skip
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
            key = f"{name}:{outcome}"
            counts[key] = counts.get(key, 0) + 1
    os.close(fd)
    summary = {
        "mutations": count,
        "calls": sum(counts.values()),
        "counts": counts,
        "problems": problems[:50],
        "problem_count": len(problems),
        "seconds": time.monotonic() - started,
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
