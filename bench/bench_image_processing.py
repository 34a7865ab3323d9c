"""Time and peak memory of process_upload on a ~10 MB JPEG, alone and 20 at once.

Run: .venv/bin/python bench/bench_image_processing.py [--megapixels 24]
Each scenario runs in a fresh process so that its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from docwiz.services.images import MAX_UPLOAD_BYTES, process_upload

CONCURRENT_UPLOADS = 20
SCENARIOS = ("single", "threads", "to_thread")


def make_jpeg(megapixels: float, limit: int = MAX_UPLOAD_BYTES) -> bytes:
    """A noisy photo-like JPEG as close under ``limit`` bytes as quality allows."""
    width = int((megapixels * 1e6 * 4 / 3) ** 0.5)
    height = int(width * 3 / 4)
    rng = np.random.default_rng(1)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    pixels = np.stack([90 + 100 * xs / width, 80 + 90 * ys / height, 120 + 0 * xs], -1)
    pixels += rng.normal(0, 9, pixels.shape).astype(np.float32)
    image = Image.fromarray(pixels.clip(0, 255).astype(np.uint8), "RGB")
    del pixels, xs, ys
    draw = ImageDraw.Draw(image)
    for _ in range(400):
        x, y = int(rng.integers(0, width)), int(rng.integers(0, height))
        size = int(rng.integers(40, 600))
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        draw.ellipse((x, y, x + size, y + size), outline=colour, width=6)

    best = b""
    low, high = 50, 98
    while low <= high:
        quality = (low + high) // 2
        buffer = io.BytesIO()
        image.save(buffer, "JPEG", quality=quality)
        if buffer.tell() <= limit:
            best, low = buffer.getvalue(), quality + 1
        else:
            high = quality - 1
    if not best:
        sys.exit(f"no quality fits {megapixels} MP under {limit} bytes; use fewer MP")
    return best


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak_rss() -> None:
    # Writing 5 to clear_refs resets VmHWM (Linux 4.0+), so the peak read
    # afterwards belongs to the scenario alone, not to the setup before it.
    with open("/proc/self/clear_refs", "w") as clear_refs:
        clear_refs.write("5")


def run_scenario(scenario: str, input_path: Path) -> dict[str, float]:
    """Run one scenario in this process and measure it."""
    data = input_path.read_bytes()
    count = 1 if scenario == "single" else CONCURRENT_UPLOADS
    # A private copy of the body per upload, as the HTTP layer would hold.
    uploads = [bytes(bytearray(data)) for _ in range(count)]
    process_upload(_tiny_jpeg())  # first-call work (codecs, numpy) out of the way
    baseline = _status_bytes("VmRSS")
    _reset_peak_rss()
    tracemalloc.start()
    started = time.perf_counter()

    if scenario == "single":
        process_upload(uploads[0])
    elif scenario == "threads":
        with ThreadPoolExecutor(max_workers=CONCURRENT_UPLOADS) as pool:
            list(pool.map(process_upload, uploads))
    else:

        async def all_uploads() -> None:
            await asyncio.gather(
                *(asyncio.to_thread(process_upload, body) for body in uploads)
            )

        asyncio.run(all_uploads())

    elapsed = time.perf_counter() - started
    _, traced_peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return {
        "count": count,
        "seconds": elapsed,
        "rss_over_baseline": max(0, _status_bytes("VmHWM") - baseline),
        "traced_peak": traced_peak,
    }


def _tiny_jpeg() -> bytes:
    rng = np.random.default_rng(0)
    image = Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    buffer = io.BytesIO()
    image.save(buffer, "JPEG")
    return buffer.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--megapixels", type=float, default=24.0)
    parser.add_argument("--scenario", choices=SCENARIOS, help=argparse.SUPPRESS)
    parser.add_argument("--input", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.scenario:
        print(json.dumps(run_scenario(args.scenario, args.input)))
        return

    with tempfile.TemporaryDirectory() as folder:
        input_path = Path(folder) / "upload.jpg"
        data = make_jpeg(args.megapixels)
        input_path.write_bytes(data)
        with Image.open(input_path) as image:
            width, height = image.size
        print(
            f"input: JPEG {width}x{height} ({width * height / 1e6:.1f} MP),"
            f" {len(data) / 2**20:.2f} MiB; {os.cpu_count()} CPUs"
        )
        workers = min(32, (os.cpu_count() or 1) + 4)
        labels = {
            "single": "1 upload",
            "threads": f"{CONCURRENT_UPLOADS} at once, one thread each",
            "to_thread": f"{CONCURRENT_UPLOADS} via to_thread ({workers} workers)",
        }
        print(
            f"{'scenario':42} {'wall s':>7} {'s/upload':>8}"
            f" {'peak RSS MiB':>12} {'traced MiB':>10}"
        )
        for scenario in SCENARIOS:
            result = json.loads(
                subprocess.run(
                    [
                        sys.executable,
                        __file__,
                        "--scenario",
                        scenario,
                        "--input",
                        str(input_path),
                    ],
                    check=True,
                    capture_output=True,
                    text=True,
                ).stdout
            )
            print(
                f"{labels[scenario]:42} {result['seconds']:7.2f}"
                f" {result['seconds'] / result['count']:8.2f}"
                f" {result['rss_over_baseline'] / 2**20:12.0f}"
                f" {result['traced_peak'] / 2**20:10.1f}"
            )
        print(
            "peak RSS: growth of the process's resident memory over its state"
            " just before the uploads (bodies already in memory);\ntraced:"
            " Python and numpy allocations seen by tracemalloc (Pillow's pixel"
            " buffers are outside it)."
        )


if __name__ == "__main__":
    main()
