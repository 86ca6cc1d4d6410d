"""A small TCP proxy for fault injection between the host and a device's sshd (no netem here).

    proxy = TcpProxy(target_port=device.port).start()      # listen on 127.0.0.1:proxy.port
    proxy.plan_cut(after_bytes=3_000_000)                  # the next connection breaks mid-way
    proxy.set_delay(0.01)                                  # every chunk waits 10 ms (a slow link)
    proxy.freeze()                                         # live links stop moving bytes (drop)
    proxy.hang_new_connections(True)                       # accept TCP, never say a word
    proxy.retarget(other.port)                             # new connections go elsewhere (MITM)
    proxy.cut_all()                                        # reset every live connection now
    proxy.close()

A cut resets both sides (SO_LINGER 0), as a broken link or a rebooting router does: the
client and sshd each see the connection die, with exactly `after_bytes` bytes delivered in
the chosen direction. Bytes are real: nothing here parses or changes the SSH stream.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from dataclasses import dataclass, field

_CHUNK = 16384


@dataclass
class PlannedCut:
    """Cut a connection once it has carried `after_bytes` bytes in `direction` ("up" = to the device)."""

    after_bytes: int
    direction: str = "up"


@dataclass
class ProxyStats:
    connections: int = 0
    cuts: int = 0
    bytes_up: int = 0
    bytes_down: int = 0
    cut_at: list[int] = field(default_factory=list)


def _reset(sock: socket.socket) -> None:
    """Close with RST (not FIN): the peer sees the link break, not a polite goodbye.

    SHUT_RD first wakes the pump thread blocked in `recv` on this socket (it sends nothing):
    Linux holds a socket that a thread is reading open past `close`, so without it an idle
    peer would never get the RST.
    """
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RD)
    with contextlib.suppress(OSError):
        sock.close()


class _Link:
    """One client connection and its upstream twin, pumped by two threads."""

    def __init__(self, proxy: TcpProxy, client: socket.socket, cut: PlannedCut | None) -> None:
        self.proxy = proxy
        self.client = client
        self.upstream: socket.socket | None = None
        self.cut = cut
        self.carried = {"up": 0, "down": 0}
        self.closed = threading.Event()
        self.frozen = threading.Event()
        self._lock = threading.Lock()
        self._sides_done = 0

    def start(self, hang: bool, target: tuple[str, int]) -> None:
        if hang:
            return  # accepted, never answered: held open until the proxy closes
        try:
            self.upstream = socket.create_connection(target, timeout=10)
            self.upstream.settimeout(None)
        except OSError:
            self.close(reset=True)
            return
        for source, sink, direction in (
            (self.client, self.upstream, "up"),
            (self.upstream, self.client, "down"),
        ):
            threading.Thread(target=self._pump, args=(source, sink, direction), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, direction: str) -> None:
        proxy = self.proxy
        while not self.closed.is_set():
            try:
                data = source.recv(_CHUNK)
            except OSError:
                break
            if self.closed.is_set():
                break  # woken by the other side's reset
            if not data:
                with contextlib.suppress(OSError):
                    sink.shutdown(socket.SHUT_WR)
                self._one_side_done()
                return
            while self.frozen.is_set() and not self.closed.is_set():
                time.sleep(0.02)  # a black hole: bytes neither delivered nor refused
            if proxy.delay_s:
                time.sleep(proxy.delay_s)
            cut_now = False
            with self._lock:
                if self.cut is not None and self.cut.direction == direction:
                    room = self.cut.after_bytes - self.carried[direction]
                    if room < len(data):
                        data, cut_now = data[: max(room, 0)], True
                self.carried[direction] += len(data)
            try:
                if data:
                    sink.sendall(data)
            except OSError:
                break
            with proxy.lock:
                if direction == "up":
                    proxy.stats.bytes_up += len(data)
                else:
                    proxy.stats.bytes_down += len(data)
            if cut_now:
                with proxy.lock:
                    proxy.stats.cuts += 1
                    proxy.stats.cut_at.append(self.carried[direction])
                self.close(reset=True)
                return
        self.close(reset=True)

    def _one_side_done(self) -> None:
        with self._lock:
            self._sides_done += 1
            both = self._sides_done == 2
        if both:
            self.close(reset=False)  # both ends said goodbye: a clean close

    def close(self, reset: bool = True) -> None:
        if self.closed.is_set():
            return
        self.closed.set()
        for sock in (self.client, self.upstream):
            if sock is not None:
                if reset:
                    _reset(sock)
                else:
                    with contextlib.suppress(OSError):
                        sock.close()


class TcpProxy:
    """Listens on 127.0.0.1:`port` and forwards to `target_port`, with faults on request."""

    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.lock = threading.Lock()
        self.stats = ProxyStats()
        self.delay_s = 0.0
        self._hang = False
        self._planned: list[PlannedCut] = []
        self._links: list[_Link] = []
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> TcpProxy:
        self._listener.listen(128)
        self._listener.settimeout(0.2)
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()
        return self

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            client.settimeout(None)
            with self.lock:
                self.stats.connections += 1
                cut = self._planned.pop(0) if self._planned else None
                link = _Link(self, client, cut)
                self._links.append(link)
                hang, target = self._hang, self.target
            link.start(hang, target)

    def close(self) -> None:
        self._stopping.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        self.cut_all()
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> TcpProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ faults

    def plan_cut(self, after_bytes: int, count: int = 1, direction: str = "up") -> None:
        """The next `count` new connections each break after `after_bytes` in `direction`."""
        if direction not in ("up", "down"):
            raise ValueError("direction is 'up' (to the device) or 'down'")
        with self.lock:
            self._planned.extend(PlannedCut(after_bytes, direction) for _ in range(count))

    def set_delay(self, seconds: float) -> None:
        """Every forwarded chunk waits this long (a slow, high-latency link)."""
        self.delay_s = seconds

    def freeze(self) -> int:
        """Live links stop moving bytes (a black hole; new connections work); returns how many."""
        links = self._live()
        for link in links:
            link.frozen.set()
        return len(links)

    def _live(self) -> list[_Link]:
        with self.lock:
            return [link for link in self._links if not link.closed.is_set()]

    def hang_new_connections(self, hang: bool = True) -> None:
        """New connections are accepted and then ignored: TCP works, SSH never answers."""
        with self.lock:
            self._hang = hang

    def retarget(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        """New connections go to another server (what a man in the middle would do)."""
        with self.lock:
            self.target = (target_host, target_port)

    def cut_all(self) -> int:
        """Reset every live connection now; returns how many there were."""
        with self.lock:
            links = [link for link in self._links if not link.closed.is_set()]
            self._links = []
        for link in links:
            link.close(reset=True)
        return len(links)


def hung_listener() -> tuple[socket.socket, int]:
    """A bare listening socket that accepts (the kernel does) and never reads or writes.

    Returns (socket, port); close the socket when done.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    return sock, sock.getsockname()[1]
