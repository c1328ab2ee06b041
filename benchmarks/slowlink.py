"""A slow link on loopback: a TCP proxy that limits each direction's rate and delays every chunk.

    python benchmarks/slowlink.py --listen 9999 --target 8888 --mbit 10 --rtt-ms 100

Everything a client sends to ``127.0.0.1:<listen>`` reaches ``127.0.0.1:<target>`` and back through two
one-way pipes. Each direction has one token bucket (`mbit` megabits per second of TCP payload, shared by
all connections, as one link is; a burst of `burst` bytes) and a one-way delay of half the round trip
added to every chunk, in order. A new connection's first bytes also wait one round trip (the TCP
handshake a real link would cost). It is plain TCP, so HTTP and websockets are throttled alike.

:func:`start` runs it in a background thread (the benchmark's way); :class:`SlowLink` counts the bytes
that crossed each way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

#: Bytes read from a socket at a time: at 10 Mbit/s one chunk is ~13 ms of the link.
CHUNK = 16 * 1024


class TokenBucket:
    """`rate` bytes per second with a burst of `burst` bytes; :meth:`take` waits until the bytes may go.

    Callers that find the bucket short reserve their bytes (the level goes below zero) and sleep
    until it would refill, so concurrent senders queue in the order they asked.
    """

    def __init__(self, rate: float, burst: int) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be positive, got {rate}")
        self.rate = rate
        self.burst = burst
        self.level = float(burst)
        self.stamp = time.monotonic()

    async def take(self, n: int) -> None:
        now = time.monotonic()
        self.level = min(self.burst, self.level + (now - self.stamp) * self.rate)
        self.stamp = now
        self.level -= n
        if self.level < 0:
            await asyncio.sleep(-self.level / self.rate)


@dataclass
class Counters:
    """Bytes that crossed the link, each way, and the connections it carried."""

    up: int = 0        # client -> target
    down: int = 0      # target -> client
    connections: int = 0

    def add_up(self, n: int) -> None:
        self.up += n

    def add_down(self, n: int) -> None:
        self.down += n


@dataclass
class LinkConfig:
    """The link's shape: a rate each way (bytes/s), a round trip (s) and a burst (bytes)."""

    rate: float
    rtt: float
    burst: int = CHUNK
    host: str = "127.0.0.1"


def mbit_to_bytes(mbit: float) -> float:
    """Megabits per second as bytes per second."""
    return mbit * 1e6 / 8


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, bucket: TokenBucket, delay: float,
                not_before: float, add: Callable[[int], None]) -> None:
    """Copy `reader` to `writer`: each chunk leaves when `bucket` allows and arrives `delay` s later
    (never before `not_before`, a monotonic time), in order; EOF is passed on as a half close."""
    queue: asyncio.Queue[tuple[float, bytes | None]] = asyncio.Queue()

    async def deliver() -> None:
        while True:
            due, chunk = await queue.get()
            wait = max(due, not_before) - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            if chunk is None:
                if writer.can_write_eof():
                    with contextlib.suppress(OSError):
                        writer.write_eof()
                return
            add(len(chunk))  # counted as handed over: a reader may have them before drain() returns
            writer.write(chunk)
            await writer.drain()

    task = asyncio.create_task(deliver())
    try:
        while True:
            chunk = await reader.read(CHUNK)
            if not chunk:
                break
            await bucket.take(len(chunk))
            queue.put_nowait((time.monotonic() + delay, chunk))
            if task.done():  # the other end went away
                break
        queue.put_nowait((time.monotonic() + delay, None))
        await task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError):
                await task


class _Proxy:
    """The asyncio side: one bucket per direction, two pipes per accepted connection."""

    def __init__(self, config: LinkConfig, target_port: int, counters: Counters) -> None:
        self.config = config
        self.target_port = target_port
        self.counters = counters
        self.up = TokenBucket(config.rate, config.burst)
        self.down = TokenBucket(config.rate, config.burst)

    async def handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        # When the proxy stops: a handler that ended cancelled would make asyncio's stream callback raise.
        with contextlib.suppress(asyncio.CancelledError):
            await self.relay(client_r, client_w)

    async def relay(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        self.counters.connections += 1
        half = self.config.rtt / 2
        # The client's first bytes reach the target 1.5 round trips after it connected, as after a handshake.
        handshake = time.monotonic() + self.config.rtt + half
        try:
            server_r, server_w = await asyncio.open_connection(self.config.host, self.target_port)
        except OSError:
            client_w.close()
            return
        counters = self.counters
        pipes = [asyncio.create_task(_pipe(client_r, server_w, self.up, half, handshake, counters.add_up)),
                 asyncio.create_task(_pipe(server_r, client_w, self.down, half, 0.0, counters.add_down))]
        try:
            await asyncio.wait(pipes, return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in pipes:  # a reset on either side ends the connection
                task.cancel()
            await asyncio.gather(*pipes, return_exceptions=True)
            for w in (client_w, server_w):
                w.close()
                with contextlib.suppress(OSError, asyncio.CancelledError):
                    await w.wait_closed()


@dataclass
class SlowLink:
    """A running proxy: ``127.0.0.1:port`` forwards to the target through the slow link.

    Use it as a context manager, or call :meth:`stop`. :attr:`counters` counts the payload bytes
    delivered each way, as they are delivered.
    """

    port: int
    config: LinkConfig
    counters: Counters = field(default_factory=Counters)
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _server: asyncio.AbstractServer | None = None

    @property
    def url(self) -> str:
        return f"http://{self.config.host}:{self.port}/"

    def stop(self) -> None:
        """Close the listening socket and every connection, and end the thread."""
        loop, self._loop = self._loop, None
        if loop is None:
            return

        async def shut() -> None:
            if self._server is not None:
                self._server.close()
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        asyncio.run_coroutine_threadsafe(shut(), loop).result(timeout=10)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> SlowLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def start(target_port: int, *, mbit: float = 10.0, rtt_ms: float = 100.0, listen_port: int = 0,
          host: str = "127.0.0.1", burst: int = CHUNK) -> SlowLink:
    """Start the proxy in a daemon thread; `listen_port` 0 picks a free port. Returns once it listens."""
    config = LinkConfig(rate=mbit_to_bytes(mbit), rtt=rtt_ms / 1000, burst=burst, host=host)
    link = SlowLink(port=0, config=config)
    proxy = _Proxy(config, target_port, link.counters)
    ready = threading.Event()
    failure: list[BaseException] = []
    loop = asyncio.new_event_loop()

    def run() -> None:
        asyncio.set_event_loop(loop)
        try:
            link._server = loop.run_until_complete(asyncio.start_server(proxy.handle, host, listen_port))
            link.port = int(link._server.sockets[0].getsockname()[1])
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            failure.append(exc)
            ready.set()
            return
        ready.set()
        try:
            loop.run_forever()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name=f"slowlink-{listen_port}", daemon=True)
    thread.start()
    if not ready.wait(timeout=10):
        raise RuntimeError("the slow-link proxy did not start within 10 s")
    if failure:
        raise RuntimeError(f"the slow-link proxy could not listen on {host}:{listen_port}: {failure[0]}")
    link._loop, link._thread = loop, thread
    return link


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True, help="port to listen on (127.0.0.1)")
    parser.add_argument("--target", type=int, required=True, help="port to forward to (127.0.0.1)")
    parser.add_argument("--mbit", type=float, default=10.0, help="rate of each direction, Mbit/s (default 10)")
    parser.add_argument("--rtt-ms", type=float, default=100.0, help="round trip added, ms (default 100)")
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    link = start(args.target, mbit=args.mbit, rtt_ms=args.rtt_ms, listen_port=args.listen, host=args.host)
    print(f"slow link {args.host}:{link.port} -> {args.host}:{args.target}: {args.mbit:g} Mbit/s each way, "
          f"{args.rtt_ms:g} ms round trip (Ctrl-C or SIGTERM stops)", flush=True)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # `kill` stops it as Ctrl-C does
    try:
        while True:
            time.sleep(3600)
    except (KeyboardInterrupt, SystemExit):
        pass
    finally:
        link.stop()
        print(f"carried {link.counters.up} bytes up, {link.counters.down} down, "
              f"{link.counters.connections} connections")


if __name__ == "__main__":
    main()
