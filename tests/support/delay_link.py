"""A slow link in user space: a TCP relay that delays every byte and caps the rate each way.

    python -m support.delay_link --target-port 2222 --delay-ms 20 --rate-mbit 100
    # prints the port it listens on (127.0.0.1), then relays until killed

For kernels without `sch_netem` (this host's: only htb, tbf and pfifo qdiscs exist), so
benchmarks can put a LAN- or Wi-Fi-like link between the host and an sshd device. Each
direction of each connection: a reader stamps every chunk with its arrival time; a writer
sends it no earlier than arrival + delay, paced so the direction never exceeds the rate.
At most `window` bytes wait in the relay per direction (the reader stops reading beyond
that), so a sender is held back as a real link's queue would hold it. Bytes are not
changed. One process per device, so its CPU is neither the host's nor the device's.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import socket
import sys
import threading
import time

_CHUNK = 65536


class _Direction:
    def __init__(
        self, source: socket.socket, sink: socket.socket, delay_s: float, rate: float, window: int
    ) -> None:
        self.source, self.sink = source, sink
        self.delay_s, self.rate, self.window = delay_s, rate, window
        self.queue: collections.deque[tuple[float, bytes]] = collections.deque()
        self.queued = 0
        self.done = False
        self.cond = threading.Condition()

    def read(self) -> None:
        try:
            while True:
                data = self.source.recv(_CHUNK)
                with self.cond:
                    if not data:
                        self.done = True
                        self.cond.notify_all()
                        return
                    while self.queued >= self.window:
                        self.cond.wait()
                    self.queue.append((time.monotonic() + self.delay_s, data))
                    self.queued += len(data)
                    self.cond.notify_all()
        except OSError:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def write(self) -> None:
        free_at = 0.0  # when the link has sent what it was given so far
        try:
            while True:
                with self.cond:
                    while not self.queue and not self.done:
                        self.cond.wait()
                    if not self.queue:
                        break
                    due, data = self.queue.popleft()
                    self.queued -= len(data)
                    self.cond.notify_all()
                start = max(due, free_at)
                free_at = start + len(data) / self.rate
                wait = free_at - time.monotonic()  # the chunk has left once its bits have
                if wait > 0:
                    time.sleep(wait)
                self.sink.sendall(data)
            with contextlib.suppress(OSError):
                self.sink.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def _serve(
    client: socket.socket, target: tuple[str, int], delay_s: float, rate: float, window: int
) -> None:
    try:
        upstream = socket.create_connection(target)
    except OSError:
        client.close()
        return
    for sock in (client, upstream):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    threads = []
    for source, sink in ((client, upstream), (upstream, client)):
        direction = _Direction(source, sink, delay_s, rate, window)
        threads += [
            threading.Thread(target=direction.read, daemon=True),
            threading.Thread(target=direction.write, daemon=True),
        ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    client.close()
    upstream.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m support.delay_link")
    parser.add_argument("--target-port", type=int, required=True)
    parser.add_argument("--target-host", default="127.0.0.1")
    parser.add_argument("--delay-ms", type=float, default=20.0, help="one way")
    parser.add_argument("--rate-mbit", type=float, default=100.0, help="each way")
    parser.add_argument("--window-bytes", type=int, default=1 << 20)
    args = parser.parse_args(argv)
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    print(listener.getsockname()[1], flush=True)
    rate = args.rate_mbit * 1e6 / 8
    while True:
        client, _ = listener.accept()
        threading.Thread(
            target=_serve,
            args=(
                client,
                (args.target_host, args.target_port),
                args.delay_ms / 1000,
                rate,
                args.window_bytes,
            ),
            daemon=True,
        ).start()


if __name__ == "__main__":
    sys.exit(main())
