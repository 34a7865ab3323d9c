"""Login latency, and whether other requests keep answering while many logins run.

Starts `docwiz serve` in its own process (embedded defaults in a temporary
folder), then measures over real HTTP on 127.0.0.1:

1. login one at a time: right password, wrong password, unknown email
   (the last two should cost about the same: both verify an argon2id hash);
2. GET /api/health and GET /api/auth/me while idle;
3. the same two probes while CONCURRENT logins are kept in flight.

Run: .venv/bin/python bench/bench_login.py [--concurrent 20] [--seconds 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

PASSWORD = "Bench-Password-42"  # noqa: S105  (the benchmark's throw-away account)
EMAIL = "bench@example.com"
SEQUENTIAL = 30
PROBE_INTERVAL = 0.02


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    cut = statistics.quantiles(ordered, n=100, method="inclusive")
    return {
        "n": len(ordered),
        "p50": cut[49] * 1000,
        "p95": cut[94] * 1000,
        "max": ordered[-1] * 1000,
    }


def row(label: str, samples: list[float]) -> str:
    stats = percentiles(samples)
    return (
        f"{label:<44} {stats['n']:>5} {stats['p50']:>9.1f} {stats['p95']:>9.1f} "
        f"{stats['max']:>9.1f}"
    )


async def timed(call: Callable[[], Awaitable[int]], expected: int) -> float:
    started = time.perf_counter()
    status = await call()
    elapsed = time.perf_counter() - started
    if status != expected:
        raise RuntimeError(f"expected HTTP {expected}, got {status}")
    return elapsed


class Service:
    """`docwiz serve` in a child process with its own data folder."""

    def __init__(self, folder: Path) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "DOCWIZ_DATA_DIR": str(folder),
            "DOCWIZ_PORT": str(self.port),
            "DOCWIZ_HOST": "127.0.0.1",
            "DOCWIZ_LOG_LEVEL": "WARNING",
            # The benchmark is one client hammering the service on purpose.
            "DOCWIZ_RATE_LIMIT_PER_HOUR": "10000000",
            "DOCWIZ_LOGIN_FAILURES_PER_EMAIL": "10000000",
            "DOCWIZ_LOGIN_FAILURES_PER_ADDRESS": "10000000",
        }
        self.log = folder / "serve.log"
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "docwiz.cli", "serve"],
                env=env,
                cwd=folder,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )

    async def wait_ready(self, http: aiohttp.ClientSession) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                async with http.get(f"{self.base}/api/health") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
        raise RuntimeError("docwiz serve did not answer within 60 s")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()


async def measure(concurrent: int, seconds: float) -> None:
    with tempfile.TemporaryDirectory() as folder:
        service = Service(Path(folder))
        connector = aiohttp.TCPConnector(limit=concurrent + 10)
        try:
            async with aiohttp.ClientSession(connector=connector) as http:
                await service.wait_ready(http)
                await run(http, service.base, concurrent, seconds)
        finally:
            service.stop()


async def run(
    http: aiohttp.ClientSession, base: str, concurrent: int, seconds: float
) -> None:
    async def post(path: str, body: dict[str, str]) -> int:
        async with http.post(base + path, json=body) as response:
            await response.read()
            return response.status

    async def get(path: str, headers: dict[str, str] | None = None) -> int:
        async with http.get(base + path, headers=headers) as response:
            await response.read()
            return response.status

    assert await post("/api/auth/register", {"email": EMAIL, "password": PASSWORD})
    async with http.post(
        base + "/api/auth/login", json={"email": EMAIL, "password": PASSWORD}
    ) as response:
        token = (await response.json())["access_token"]
    me_headers = {"Authorization": f"Bearer {token}"}

    def login(email: str, password: str) -> Callable[[], Awaitable[int]]:
        return lambda: post("/api/auth/login", {"email": email, "password": password})

    # Interleaved, so a noisy neighbour slows all three kinds alike.
    right: list[float] = []
    wrong: list[float] = []
    unknown: list[float] = []
    for _ in range(SEQUENTIAL):
        right.append(await timed(login(EMAIL, PASSWORD), 200))
        wrong.append(await timed(login(EMAIL, "Wrong-Password-1"), 401))
        unknown.append(await timed(login("nobody@example.com", PASSWORD), 401))
    idle_health = [await timed(lambda: get("/api/health"), 200) for _ in range(100)]
    idle_me = [
        await timed(lambda: get("/api/auth/me", me_headers), 200) for _ in range(100)
    ]

    stop_at = time.monotonic() + seconds
    busy_logins: list[float] = []
    busy_health: list[float] = []
    busy_me: list[float] = []

    async def log_in_repeatedly() -> None:
        while time.monotonic() < stop_at:
            busy_logins.append(await timed(login(EMAIL, PASSWORD), 200))

    async def probe() -> None:
        await asyncio.sleep(0.3)  # let the login storm build up first
        while time.monotonic() < stop_at:
            busy_health.append(await timed(lambda: get("/api/health"), 200))
            busy_me.append(await timed(lambda: get("/api/auth/me", me_headers), 200))
            await asyncio.sleep(PROBE_INTERVAL)

    started = time.monotonic()
    await asyncio.gather(probe(), *(log_in_repeatedly() for _ in range(concurrent)))
    elapsed = time.monotonic() - started

    print(f"cpus: {os.cpu_count()}, concurrent logins: {concurrent}, {seconds:.0f} s")
    print(f"{'latency in ms':<44} {'n':>5} {'p50':>9} {'p95':>9} {'max':>9}")
    print(row("login, right password (one at a time)", right))
    print(row("login, wrong password (one at a time)", wrong))
    print(row("login, unknown email (one at a time)", unknown))
    print(row("GET /api/health, idle", idle_health))
    print(row("GET /api/auth/me, idle", idle_me))
    print(row(f"login, {concurrent} in flight", busy_logins))
    print(row(f"GET /api/health, {concurrent} logins in flight", busy_health))
    print(row(f"GET /api/auth/me, {concurrent} logins in flight", busy_me))
    print(f"login throughput under load: {len(busy_logins) / elapsed:.1f} per second")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrent", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args()
    asyncio.run(measure(args.concurrent, args.seconds))


if __name__ == "__main__":
    main()
