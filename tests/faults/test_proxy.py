"""The fault proxy's cut reaches both ends at once, an idle one too.

The faults suite trusts the proxy: a cut that the device's sshd never hears about leaves its
sftp-server holding the part, and the resume tests then wait on it (a flake seen in CI).
"""

from __future__ import annotations

import socket
import time

import pytest
from support.tcp_proxy import TcpProxy


@pytest.fixture
def server():
    with socket.create_server(("127.0.0.1", 0)) as listener:
        yield listener


@pytest.mark.parametrize("direction", ["up", "down"])
def test_a_cut_resets_the_idle_end_at_once(server, direction):
    with TcpProxy(server.getsockname()[1]) as proxy:
        proxy.plan_cut(after_bytes=10, direction=direction)
        client = socket.create_connection(("127.0.0.1", proxy.port))
        upstream, _ = server.accept()
        sender, idle = (client, upstream) if direction == "up" else (upstream, client)
        with client, upstream:
            idle.settimeout(5)
            sender.sendall(b"x" * 5)
            assert idle.recv(100) == b"x" * 5  # both pumps are now waiting in recv
            sender.sendall(b"x" * 50)  # crosses the cut; the idle end sends nothing
            started = time.monotonic()
            with pytest.raises(ConnectionResetError):
                while idle.recv(100):
                    pass
            assert time.monotonic() - started < 2
