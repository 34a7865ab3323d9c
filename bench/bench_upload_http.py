"""Peak memory and time of POST /api/images/upload with a ~10 MB JPEG, through
the real service: one upload, then 20 at once.

Run: .venv/bin/python bench/bench_upload_http.py [--image-workers 2]
Each scenario runs in a fresh process so its peak RSS is its own; the client
runs in the same process, so the numbers include the request bodies it holds.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

sys.path.insert(0, str(Path(__file__).parent))
from bench_image_processing import make_jpeg

from docwiz.app import create_app
from docwiz.appkeys import DATABASE, TOKENS
from docwiz.config import Settings
from docwiz.services.accounts import create_user

CONCURRENT = 20


def rss_mib() -> float:
    """Peak resident memory of this process (VmHWM). Unlike ``ru_maxrss``, it
    starts afresh at exec, so the parent's own peak does not leak in."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


async def scenario(count: int, image_workers: int, photo: bytes) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        settings = Settings(
            data_dir=Path(folder),
            image_workers=image_workers,
            rate_limit_per_hour=10_000,
        )
        server = TestServer(create_app(settings))
        await server.start_server()
        app = server.app
        async with app[DATABASE].session() as session:
            user = await create_user(session, "bench@example.com", "Bench-Password-1")
        token, _ = app[TOKENS].issue(user.id)
        headers = {"Authorization": f"Bearer {token}"}
        url = str(server.make_url("/api/images/upload"))

        async def upload(session: aiohttp.ClientSession) -> float:
            form = aiohttp.FormData()
            form.add_field("file", photo, filename="photo.jpg")
            started = time.perf_counter()
            async with session.post(url, data=form, headers=headers) as response:
                assert response.status == 200, await response.text()
                await response.read()
            return time.perf_counter() - started

        baseline = rss_mib()
        tracemalloc.start()
        started = time.perf_counter()
        async with aiohttp.ClientSession() as session:
            latencies = await asyncio.gather(*(upload(session) for _ in range(count)))
        wall = time.perf_counter() - started
        _current, traced_peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        await server.close()
    return {
        "uploads": count,
        "wall_s": round(wall, 2),
        "slowest_s": round(max(latencies), 2),
        "peak_rss_above_start_mib": round(rss_mib() - baseline, 1),
        "python_heap_peak_mib": round(traced_peak / 2**20, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--image-workers", type=int, default=2)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("photo", nargs="?", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child is not None:
        photo = Path(args.photo).read_bytes()
        result = asyncio.run(scenario(args.child, args.image_workers, photo))
        print(json.dumps(result))
        return

    with tempfile.NamedTemporaryFile(suffix=".jpg") as handle:
        photo = make_jpeg(24)
        handle.write(photo)
        handle.flush()
        size = len(photo) / 2**20
        print(f"photo: {size:.2f} MiB JPEG, image_workers={args.image_workers}")
        print("uploads | wall s | slowest s | peak RSS over start MiB | heap peak MiB")
        for count in (1, CONCURRENT):
            output = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--child",
                    str(count),
                    "--image-workers",
                    str(args.image_workers),
                    handle.name,
                ],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            row = json.loads(output.strip().splitlines()[-1])
            print(
                f"{row['uploads']:>7} | {row['wall_s']:>6} | {row['slowest_s']:>9} | "
                f"{row['peak_rss_above_start_mib']:>23} | "
                f"{row['python_heap_peak_mib']:>13}"
            )


if __name__ == "__main__":
    main()
