"""A fork server ("zygote") for benchmark children: import the runtime once per job, fork each
fresh member process in milliseconds.

Why: a group job renews every member's process every `rounds_per_process` rounds (see
rounds.py: each process generation has its own memory layout, which the host resamples).
A fresh `python -m device_agents.bench_child` pays Python's start-up and the import of numpy
and the runtime each time: ~0.5 s on this host, 3-5 s on a Pi or under qemu, so a group of 4
cost 8 imports. One zygote per job imports them once (and creates no interpreter, so it has
started no thread: it checks /proc/self/task before it says it is ready) and `os.fork()`s
each child on request.

What a forked child keeps from a fresh process: its own address space (copy-on-write), its
own process group (killed alone: a crash, a hang or a cancel kills that member's group
only), death with its parent (PR_SET_PDEATHSIG on the zygote, which itself dies with the
agent), and a layout of its own: the model, the interpreter's arena and XNNPACK's packed
weights are allocated after the fork, behind a random-sized padding (`_jitter_layout`) so
each generation's buffers land at other addresses, as ASLR would place them in a fresh
process. The shared libraries' addresses are the zygote's, i.e. new for every job.

Wire: a SOCK_SEQPACKET socket pair. The agent sends {"op": "fork", "argv": [...]} with the
child's stdin, stdout and stderr as SCM_RIGHTS; the zygote answers {"pid": N}. Whenever a
child ends, the zygote sends {"exit": N, "code": C} (C as subprocess gives it: -signal when
killed). EOF on the socket: the zygote kills what is left and exits.

Before it says it is ready the zygote freezes its heap (gc.freeze): a forked child's full
collection before its timed runs walks only the child's own objects, not the ~10^5 of numpy
and the runtime (whose pages the collector would otherwise write to, and so copy, in every
child); benchmarks/bench_session.py measures it beside EDGEPRUNE_ZYGOTE_FREEZE=0 (off).

Off with EDGEPRUNE_AGENT_FORK=0, and wherever fork or the zygote is unavailable: then each
child is started with subprocess as before, and the measurements say so (process_start).
"""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import tempfile
import time
from typing import IO, Any, Callable, Dict, List, Optional

FORK_ENV = "EDGEPRUNE_AGENT_FORK"
FREEZE_ENV = "EDGEPRUNE_ZYGOTE_FREEZE"
READY_LIMIT_S = 120.0  # importing numpy and a runtime under qemu takes 3-5 s; a hang, not that
MAX_MESSAGE = 1 << 16
ZYGOTE_NAME = b"ep-zygote"  # /proc/PID/comm of the zygote; a forked child takes its member's
PR_SET_NAME = 15
# Forked children get a random padding before their own allocations, up to these sizes.
JITTER_MAP_PAGES = 256
JITTER_HEAP_BYTES = 1 << 16


class ZygoteUnavailable(Exception):
    """The zygote could not start or stopped answering; the message says why (one line)."""


def fork_wanted() -> Optional[str]:
    """None if children may be forked here, else why not (for the result's facts)."""
    if os.environ.get(FORK_ENV, "1").strip() == "0":
        return f"{FORK_ENV}=0"
    if not hasattr(os, "fork") or not hasattr(socket, "SOCK_SEQPACKET"):
        return "this platform has no fork()"
    if not hasattr(socket.socket, "sendmsg"):
        return "this Python cannot pass file descriptors"
    return None


# --------------------------------------------------------------------------- agent side


class Zygote:
    """The agent's handle on one zygote process (one per job)."""

    def __init__(self, proc: subprocess.Popen, control: socket.socket, stderr: IO[bytes]) -> None:
        self.proc = proc
        self.control = control
        self.stderr = stderr
        self.ready = False
        self.import_ms: Optional[float] = None
        self.frozen: Optional[int] = None  # objects the zygote froze before forking
        self.exits: Dict[int, int] = {}
        self.children: List[int] = []
        self.gone = False  # the zygote died or closed: its children died with it

    @classmethod
    def launch(cls, argv: List[str], env: Dict[str, str]) -> Zygote:
        """Start the zygote process; it imports the runtime while the agent does its checks."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (closed in close())
        try:
            proc = subprocess.Popen(
                [*argv, "--control", str(theirs.fileno())],
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                pass_fds=(theirs.fileno(),),
                start_new_session=True,
                env=env,
                cwd="/",
            )
        except OSError:
            ours.close()
            stderr.close()
            raise
        finally:
            theirs.close()
        return cls(proc, ours, stderr)

    def wait_ready(
        self, limit_s: float, should_stop: Callable[[], bool], tick: Callable[[], None]
    ) -> None:
        """Block until the zygote has imported the runtime (ZygoteUnavailable if it cannot)."""
        deadline = time.monotonic() + limit_s
        while not self.ready:
            if should_stop():
                return
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise ZygoteUnavailable(f"it did not start within {limit_s:.0f} s")
            message = self._receive(min(0.5, remaining))
            if message is None:
                tick()
                continue
            if message.get("status") == "ready":
                self.ready = True
                self.import_ms = message.get("import_ms")
                self.frozen = message.get("frozen")
            elif message.get("status") == "error":
                raise ZygoteUnavailable(str(message.get("error") or "it failed"))

    def fork(self, argv: List[str], stdin: int, stdout: int, stderr: int) -> int:
        """A new child running bench_child's main(argv) with these descriptors; its pid."""
        request = json.dumps({"op": "fork", "argv": argv}).encode()
        fds = array.array("i", [stdin, stdout, stderr])
        try:
            self.control.sendmsg([request], [(socket.SOL_SOCKET, socket.SCM_RIGHTS, fds)])
        except OSError as exc:
            raise ZygoteUnavailable(f"it stopped answering ({exc.strerror or exc})") from None
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            message = self._receive(deadline - time.monotonic())
            if message is not None and "pid" in message:
                pid = int(message["pid"])
                self.children.append(pid)
                return pid
            if message is not None and message.get("status") == "error":
                raise ZygoteUnavailable(str(message.get("error")))
            if self.gone:
                break
        raise ZygoteUnavailable("it did not fork the benchmark process")

    def returncode(self, pid: int, timeout: Optional[float]) -> Optional[int]:
        """The child's exit code once the zygote reported it (None if not within `timeout`)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while pid not in self.exits:
            if self.gone:  # PR_SET_PDEATHSIG killed it with the zygote
                self.exits[pid] = -signal.SIGKILL
                break
            wait = None if deadline is None else deadline - time.monotonic()
            if wait is not None and wait <= 0:
                return None
            self._receive(0.5 if wait is None else min(0.5, wait))
        return self.exits[pid]

    def _receive(self, timeout: float) -> Optional[Dict[str, Any]]:
        """One message (exit reports are filed in `exits`), or None on timeout/EOF."""
        if self.gone:
            return None
        ready, _, _ = select.select([self.control], [], [], max(0.0, timeout))
        if not ready:
            if self.proc.poll() is not None:
                self.gone = True
            return None
        try:
            data = self.control.recv(MAX_MESSAGE)
        except OSError:
            data = b""
        if not data:
            self.gone = True
            return None
        message = json.loads(data.decode("utf-8"))
        if "exit" in message:
            self.exits[int(message["exit"])] = int(message["code"])
        return message  # type: ignore[no-any-return]

    def stderr_tail(self) -> str:
        from .bench import _last_line

        try:
            self.stderr.seek(0)
            return _last_line(self.stderr.read())
        except (OSError, ValueError):
            return ""

    def close(self) -> None:
        """End the zygote: EOF makes it kill any child left and exit; killed if it lingers."""
        with contextlib.suppress(OSError):
            self.control.close()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(OSError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.gone = True
        self.stderr.close()


class ForkedProcess:
    """What rounds.RoundsChild uses of a subprocess.Popen, for a child the zygote forked."""

    def __init__(self, zygote: Zygote, argv: List[str], stderr: IO[bytes]) -> None:
        stdin_r, stdin_w = os.pipe()
        stdout_r, stdout_w = os.pipe()
        try:
            self.pid = zygote.fork(argv, stdin_r, stdout_w, stderr.fileno())
        except BaseException:
            for fd in (stdin_w, stdout_r):
                os.close(fd)
            raise
        finally:
            os.close(stdin_r)
            os.close(stdout_w)
        self.zygote = zygote
        self.stdin: Optional[IO[bytes]] = os.fdopen(stdin_w, "wb")
        self.stdout: Optional[IO[bytes]] = os.fdopen(stdout_r, "rb")
        self.returncode: Optional[int] = None

    def poll(self) -> Optional[int]:
        if self.returncode is None:
            self.returncode = self.zygote.returncode(self.pid, 0.0)
        return self.returncode

    def wait(self, timeout: Optional[float] = None) -> int:
        if self.returncode is None:
            self.returncode = self.zygote.returncode(self.pid, timeout)
            if self.returncode is None:
                raise subprocess.TimeoutExpired(["bench_child"], timeout or 0.0)
        return self.returncode


class ChildStarter:
    """Starts a job's rounds children: forked from one zygote, or with subprocess if fork is
    off or the zygote fails (`fallback` then says why). Use as a context manager: leaving
    it ends the zygote."""

    def __init__(
        self, job_id: str, runtime: str, env: Dict[str, str], enabled: bool = True
    ) -> None:
        self.job_id = job_id
        self.env = env
        self.zygote: Optional[Zygote] = None
        self.fallback: Optional[str] = fork_wanted() if enabled else "no process is renewed"
        self.failure: Optional[str] = None  # the zygote was wanted but failed: why
        if self.fallback is None:
            argv = [sys.executable, "-m", "device_agents.bench_child", "--parent"]
            argv += [str(os.getpid()), "--job", job_id, "--zygote", "--runtime", runtime]
            try:
                self.zygote = Zygote.launch(argv, env)
            except OSError as exc:
                self.failure = f"the fork server could not start: {exc.strerror or exc}"
                self.fallback = self.failure

    @property
    def mode(self) -> str:
        """How the children were started: "fork" (from the zygote) or "spawn"."""
        return "spawn" if self.fallback is not None else "fork"

    def __enter__(self) -> ChildStarter:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def start(self, argv: List[str], watch: Any) -> Any:
        """A process running `argv` (bench_child's command line): a ForkedProcess or a
        subprocess.Popen, with stdin/stdout pipes and stderr into a temporary file."""
        stderr = tempfile.TemporaryFile()  # noqa: SIM115 (the RoundsChild closes it)
        zygote = self.zygote
        if zygote is not None:
            try:
                if not zygote.ready:
                    limit = min(READY_LIMIT_S, max(0.0, watch.deadline - time.monotonic()))
                    zygote.wait_ready(limit, watch.should_stop, watch.tick)
                    if watch.should_stop():
                        stderr.close()
                        raise watch.interrupted()
                return stderr, ForkedProcess(zygote, argv[argv.index("--parent") :], stderr)
            except ZygoteUnavailable as exc:
                tail = zygote.stderr_tail()
                self.failure = f"the fork server failed: {exc}" + (f" ({tail})" if tail else "")
                self.fallback = self.failure
                self.close()
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=stderr,
            start_new_session=True,
            env=self.env,
            cwd="/",
        )
        return stderr, proc


# --------------------------------------------------------------------------- zygote side


def serve(control_fd: int, runtime: str) -> int:
    """The zygote's main: import, check for threads, say ready, fork on request until EOF."""
    control = socket.socket(fileno=control_fd)

    def send(message: Dict[str, Any]) -> None:
        with contextlib.suppress(OSError):
            control.send(json.dumps(message).encode())

    _set_name(ZYGOTE_NAME)
    # threads before any import: 1, or 2 under qemu-user (its own RCU thread, not the guest's)
    baseline = _thread_count()
    blas_unset = "OPENBLAS_NUM_THREADS" not in os.environ
    if blas_unset:  # numpy's OpenBLAS would start a thread pool at import; we must have none
        os.environ["OPENBLAS_NUM_THREADS"] = "1"
    start = time.perf_counter()
    try:
        import numpy
        import numpy.random  # noqa: F401 (numpy 2 loads it lazily: 0.1 s in every child)

        from . import bench_child, inputs, protocol, runtimes  # noqa: F401 (what children use)

        runtimes.interpreter_api(runtime)
    except Exception as exc:  # a missing runtime: the spawned child will say so properly
        send({"status": "error", "error": f"cannot import {runtime}: {type(exc).__name__}: {exc}"})
        return 1
    import_ms = (time.perf_counter() - start) * 1000.0
    if blas_unset:
        del os.environ["OPENBLAS_NUM_THREADS"]  # children see the agent's environment
    threads = _thread_count()
    if threads > baseline:
        send(
            {
                "status": "error",
                "error": f"{threads - baseline} thread(s) started by importing {runtime}",
            }
        )
        return 1
    bench_child.PREIMPORTED_MS = import_ms
    frozen = _freeze_heap()
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_w, False)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    signal.set_wakeup_fd(wake_w)
    send({"status": "ready", "import_ms": import_ms, "frozen": frozen})
    children: List[int] = []
    try:
        while True:
            ready, _, _ = select.select([control.fileno(), wake_r], [], [])
            if wake_r in ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(wake_r, 512)
                _reap(children, send)
            if control.fileno() in ready:
                data, fds = _receive_fds(control)
                if not data:
                    return 0
                request = json.loads(data.decode("utf-8"))
                pid = os.fork()
                if pid == 0:  # the child: never returns
                    _child(request["argv"], fds, [control.fileno(), wake_r, wake_w])
                for fd in fds:
                    os.close(fd)
                with contextlib.suppress(OSError):
                    os.setpgid(pid, pid)  # the child does it too: no window without its group
                children.append(pid)
                send({"pid": pid})
                _reap(children, send)
    finally:
        for pid in children:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)
        for pid in children:
            with contextlib.suppress(OSError):
                os.waitpid(pid, 0)
        # no interpreter shutdown: tearing down numpy and the runtime takes ~0.3 s, and
        # nothing here needs flushing (the children's results went through their own pipes)
        os._exit(0)


def _receive_fds(control: socket.socket) -> Any:
    size = array.array("i").itemsize * 3
    try:
        data, ancillary, _flags, _address = control.recvmsg(MAX_MESSAGE, socket.CMSG_LEN(size))
    except OSError:
        return b"", []
    fds = array.array("i")
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
    return data, list(fds)


def _reap(children: List[int], send: Callable[[Dict[str, Any]], None]) -> None:
    for pid in list(children):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done:
            children.remove(pid)
            code = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
            send({"exit": pid, "code": code})


def _child(argv: List[str], fds: List[int], close: List[int]) -> None:
    """In the forked child: own group, own descriptors, then bench_child's main; exit."""
    code = 1
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        for fd in close:
            with contextlib.suppress(OSError):
                os.close(fd)
        for target, fd in enumerate(fds[:3]):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        argv = list(argv)
        argv[argv.index("--parent") + 1] = str(os.getppid())  # the zygote is its parent
        if "--member" in argv:
            _set_name(argv[argv.index("--member") + 1].encode()[-15:])
        padding = _jitter_layout()
        from . import bench_child

        code = bench_child.main(argv)
        del padding
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        import traceback

        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _freeze_heap() -> int:
    """Move everything imported so far out of the collector's reach (gc.freeze, as prefork
    servers do): a child's full collection before its timed runs then walks only its own
    objects, instead of every object of numpy and the runtime, writing to (and so copying)
    every page that holds them. What a child allocates is collected as in a fresh process.
    Off with EDGEPRUNE_ZYGOTE_FREEZE=0 (benchmarks/bench_session.py compares). How many
    objects it froze."""
    import gc

    gc.collect()
    if os.environ.get(FREEZE_ENV, "1").strip() == "0":
        return 0
    gc.freeze()
    return int(gc.get_freeze_count())


def _jitter_layout() -> Any:
    """Random-sized padding in the mmap area and the heap, so this child's own buffers (the
    model, the arena, packed weights) land at addresses of their own, as in a fresh process."""
    import mmap

    pages = 1 + int.from_bytes(os.urandom(2), "little") % JITTER_MAP_PAGES
    region = mmap.mmap(-1, pages * mmap.PAGESIZE)
    heap = bytearray(int.from_bytes(os.urandom(4), "little") % JITTER_HEAP_BYTES)
    return region, heap


def _thread_count() -> int:
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _set_name(name: bytes) -> None:
    """/proc/PID/comm: tells the zygote and its members apart (ps, tests)."""
    try:
        import ctypes

        ctypes.CDLL(None).prctl(PR_SET_NAME, ctypes.c_char_p(name[:15]), 0, 0, 0)
    except (OSError, AttributeError):
        pass
