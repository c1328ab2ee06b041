"""benchmarks/slowlink.py: the loopback proxy really limits the rate, adds the round trip and keeps the bytes.

Each check is a measurement against a plain TCP server on loopback (no proxy code on that side): a
sink that counts what arrives, and an echo server.
"""

from __future__ import annotations

import hashlib
import importlib.util
import pathlib
import socket
import sys
import threading
import time
from collections.abc import Iterator

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("slowlink", ROOT / "benchmarks" / "slowlink.py")
assert _spec is not None and _spec.loader is not None
slowlink = importlib.util.module_from_spec(_spec)
sys.modules["slowlink"] = slowlink  # its dataclasses look their module up there
_spec.loader.exec_module(slowlink)

pytestmark = pytest.mark.timeout(30)

MB = 1_000_000


class Server:
    """A loopback TCP server answering each connection with `serve(conn)` in its own thread."""

    def __init__(self, serve) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.serve = serve
        threading.Thread(target=self.accept, daemon=True).start()

    def accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(conn,), daemon=True).start()

    def close(self) -> None:
        self.sock.close()


def echo(conn: socket.socket) -> None:
    with conn:
        while data := conn.recv(65536):
            conn.sendall(data)


def payload(n: int) -> bytes:
    """`n` bytes that are not all alike (a reordering or a dropped chunk changes the digest)."""
    block = hashlib.sha256(b"slowlink").digest()
    out = bytearray()
    i = 0
    while len(out) < n:
        out += hashlib.sha256(block + i.to_bytes(8, "little")).digest()
        i += 1
    return bytes(out[:n])


def recv_exactly(sock: socket.socket, n: int) -> bytes:
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(min(65536, n - len(buf)))
        if not chunk:
            break
        buf += chunk
    return bytes(buf)


@pytest.fixture
def echo_link() -> Iterator[tuple[object, Server]]:
    server = Server(echo)
    link = slowlink.start(server.port, mbit=10, rtt_ms=100)
    try:
        yield link, server
    finally:
        link.stop()
        server.close()


def test_two_megabytes_take_the_time_ten_megabit_allows() -> None:
    """2 MB one way at 10 Mbit/s (1.25 MB/s): 1.6 s of payload plus the round trip; the bytes arrive intact."""
    data = payload(2 * MB)
    got: list[bytes] = []
    done = threading.Event()

    def sink(conn: socket.socket) -> None:
        with conn:
            got.append(recv_exactly(conn, len(data)))
            conn.sendall(b"k")
        done.set()

    server = Server(sink)
    link = slowlink.start(server.port, mbit=10, rtt_ms=100)
    try:
        with socket.create_connection(("127.0.0.1", link.port)) as client:
            start = time.perf_counter()
            client.sendall(data)
            assert client.recv(1) == b"k"
            elapsed = time.perf_counter() - start
        assert done.wait(5)
    finally:
        link.stop()
        server.close()
    rate = len(data) * 8 / elapsed / 1e6
    assert 1.5 <= elapsed < 4.0, f"2 MB took {elapsed:.2f} s through a 10 Mbit/s link: {rate:.2f} Mbit/s measured"
    assert got and got[0] == data, "the bytes that arrived differ from those sent (lost, changed or reordered)"
    assert link.counters.up == len(data), f"the link counted {link.counters.up} bytes up, {len(data)} were sent"


def test_a_small_echo_takes_at_least_the_round_trip(echo_link: tuple[object, Server]) -> None:
    """One byte there and back: >= 100 ms (plus one round trip for the first bytes: the handshake)."""
    link, _ = echo_link
    with socket.create_connection(("127.0.0.1", link.port)) as client:
        times = []
        for i in range(3):
            start = time.perf_counter()
            client.sendall(bytes([i]))
            assert client.recv(1) == bytes([i])
            times.append(time.perf_counter() - start)
    first, *rest = times
    assert first >= 0.2, f"the first echo took {first * 1000:.0f} ms: the handshake's round trip and the echo's are 200"
    assert all(0.1 <= t < 0.3 for t in rest), f"echo round trips {[round(t * 1000) for t in rest]} ms, expected >= 100"


def test_both_directions_are_throttled_and_keep_order(echo_link: tuple[object, Server]) -> None:
    """1 MB sent while reading it back: each direction at 10 Mbit/s, the echo identical and in order."""
    link, _ = echo_link
    data = payload(MB)
    back: list[bytes] = []
    with socket.create_connection(("127.0.0.1", link.port)) as client:
        reader = threading.Thread(target=lambda: back.append(recv_exactly(client, len(data))), daemon=True)
        start = time.perf_counter()
        reader.start()
        client.sendall(data)
        reader.join(10)
        elapsed = time.perf_counter() - start
    rate = len(data) * 8 / elapsed / 1e6
    assert 0.8 <= elapsed < 3.0, f"1 MB echoed in {elapsed:.2f} s: {rate:.2f} Mbit/s, expected about 10"
    assert back and back[0] == data, "the echoed bytes differ from those sent"
    assert link.counters.up == len(data) and link.counters.down == len(data), vars(link.counters)
