"""A lean load generator: keep-alive HTTP/1.1 over asyncio + httptools, one process.

Open loop (``--rate``): requests are scheduled at fixed intervals and latency is measured
from the *scheduled* start, so a slow server cannot hide queueing (no coordinated omission).
Closed loop (no ``--rate``): ``--concurrency`` connections send back to back (saturation),
for ``--duration`` seconds or ``--requests`` requests, whichever ends first.
Prints one JSON object: latencies and time-to-first-body-byte in seconds, errors, CPU used.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import resource
import sys
import time
from collections import deque
from urllib.parse import urlsplit

import httptools
import uvloop


class Conn(asyncio.Protocol):
    def __init__(self) -> None:
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None
        self.done: asyncio.Future[int] | None = None
        self.first_body: float | None = None
        self.alive = True

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: Exception | None) -> None:
        self.alive = False
        if self.done is not None and not self.done.done():
            self.done.set_exception(ConnectionError("closed"))

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_body(self, body: bytes) -> None:
        if self.first_body is None:
            self.first_body = time.perf_counter()

    def on_message_complete(self) -> None:
        if self.done is not None and not self.done.done():
            self.done.set_result(self.parser.get_status_code())

    async def request(self, payload: bytes) -> tuple[int, float | None]:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        self.first_body = None
        assert self.transport is not None
        self.transport.write(payload)
        status = await self.done
        return status, self.first_body


async def run(args: argparse.Namespace) -> dict[str, object]:
    url = urlsplit(args.url)
    host, port = url.hostname or "127.0.0.1", url.port or 80
    body = open(args.body, "rb").read() if args.body else b""  # noqa: SIM115, ASYNC230
    headers = "".join(f"{h}\r\n" for h in args.header)
    payload = (
        f"POST {url.path} HTTP/1.1\r\nhost: {host}:{port}\r\ncontent-type: application/json\r\n"
        f"{headers}content-length: {len(body)}\r\n\r\n"
    ).encode() + body
    loop = asyncio.get_running_loop()
    idle: deque[Conn] = deque()
    free = asyncio.Semaphore(args.concurrency)
    latencies: list[float] = []
    ttfb: list[float] = []
    errors = timeouts = 0

    async def one(scheduled: float, record: bool) -> None:
        nonlocal errors, timeouts
        async with free:
            conn = idle.pop() if idle else None
            if conn is None or not conn.alive:
                _, conn = await loop.create_connection(Conn, host, port)
            try:
                async with asyncio.timeout(args.timeout):
                    status, first = await conn.request(payload)
            except ConnectionError:
                errors += 1
                return
            except TimeoutError:  # a lost response must not stall the whole run
                errors += 1
                timeouts += 1
                conn.alive = False
                if conn.transport is not None:
                    conn.transport.close()
                return
            end = time.perf_counter()
            idle.append(conn)
        if status != 200:
            errors += 1
        elif record:
            latencies.append(end - scheduled)
            ttfb.append((first or end) - scheduled)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    warm_until = started + args.warmup
    stop_at = warm_until + args.duration
    tasks: set[asyncio.Task[None]] = set()
    if args.rate:
        interval = 1.0 / args.rate
        n = 0
        while True:
            scheduled = started + n * interval
            if scheduled >= stop_at:
                break
            delay = scheduled - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            task = loop.create_task(one(scheduled, scheduled >= warm_until))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
            n += 1
        await asyncio.gather(*tasks)
    else:
        left = args.requests or -1  # a soak's fixed count; -1: until the time is up

        async def worker() -> None:
            nonlocal left
            while (now := time.perf_counter()) < stop_at and left != 0:
                left -= 1
                await one(now, now >= warm_until)

        await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    elapsed = time.perf_counter() - warm_until
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    for conn in idle:
        if conn.transport is not None:
            conn.transport.close()
    return {
        "latencies": latencies,
        "ttfb": ttfb,
        "errors": errors,
        "timeouts": timeouts,
        "elapsed": elapsed,
        "cpu_seconds": (cpu1.ru_utime + cpu1.ru_stime) - (cpu0.ru_utime + cpu0.ru_stime),
        "wall_seconds": time.perf_counter() - started,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--url", required=True, help="http://host:port/path")
    parser.add_argument("--body", help="file with the JSON request body")
    parser.add_argument("--header", action="append", default=[], help="extra 'name: value' header")
    parser.add_argument("--concurrency", type=int, default=8, help="max connections in flight")
    parser.add_argument(
        "--rate", type=float, default=0, help="requests/s (open loop); 0: closed loop"
    )
    parser.add_argument(
        "--requests", type=int, default=0, help="closed loop: stop after this many (0: no limit)"
    )
    parser.add_argument("--duration", type=float, default=10, help="measured seconds")
    parser.add_argument("--timeout", type=float, default=30, help="seconds a response may take")
    parser.add_argument("--warmup", type=float, default=2, help="unmeasured seconds first")
    args = parser.parse_args()
    json.dump(uvloop.run(run(args)), sys.stdout)


if __name__ == "__main__":
    main()
