"""Time the offline generator on a 1024x1024 portrait, pinned to one CPU core.

Target: a median of at most 1.5 s per preview. Run with
``.venv/bin/python bench/bench_offline_generator.py [--runs 15]``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
from pathlib import Path

import cv2

from docwiz.builtin.offline_generator import OfflineGenerator
from docwiz.providers import GenerationRequest, ProcedureInfo

ASTRONAUT = Path(__file__).resolve().parent.parent / "tests/fixtures/astronaut.png"
TARGET_SECONDS = 1.5
REGIONS = ("nose", "lips", "eyelids", "breast")


def pin_to_one_core() -> str:
    """Pin this process and OpenCV's pool to one core; say what was done."""
    cv2.setNumThreads(1)
    if not hasattr(os, "sched_setaffinity"):
        return "not pinned (no sched_setaffinity here); OpenCV single-threaded"
    core = min(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {core})
    return f"pinned to core {core}; OpenCV single-threaded"


def portrait_1024() -> bytes:
    """The 512x512 astronaut scaled up to 1024x1024, as a PNG upload."""
    pixels = cv2.imread(str(ASTRONAUT), cv2.IMREAD_COLOR)
    if pixels is None:
        raise SystemExit(f"cannot read {ASTRONAUT}")
    larger = cv2.resize(pixels, (1024, 1024), interpolation=cv2.INTER_CUBIC)
    ok, encoded = cv2.imencode(".png", larger)
    if not ok:
        raise SystemExit("cannot encode the test portrait")
    return encoded.tobytes()


async def time_region(
    generator: OfflineGenerator, image: bytes, region: str, runs: int
) -> list[float]:
    request = GenerationRequest(
        image=image,
        mime_type="image/png",
        procedure=ProcedureInfo(
            id=f"bench_{region}",
            name=f"{region} preview",
            category="bench",
            body_region=region,
            coverage="cosmetic",
        ),
    )
    await generator.generate(request)  # warm-up: loads the cascades
    seconds = []
    for _ in range(runs):
        started = time.perf_counter()
        await generator.generate(request)
        seconds.append(time.perf_counter() - started)
    return seconds


async def main(runs: int) -> None:
    print(pin_to_one_core())
    image = portrait_1024()
    generator = OfflineGenerator()
    medians = {}
    for region in REGIONS:
        seconds = await time_region(generator, image, region, runs)
        medians[region] = statistics.median(seconds)
        print(
            f"{region:8s} 1024x1024 runs={runs} "
            f"median={medians[region] * 1000:.0f} ms "
            f"min={min(seconds) * 1000:.0f} ms max={max(seconds) * 1000:.0f} ms"
        )
    worst = max(medians.values())
    verdict = "within" if worst <= TARGET_SECONDS else "OVER"
    print(
        f"slowest median {worst * 1000:.0f} ms: {verdict} the "
        f"{TARGET_SECONDS * 1000:.0f} ms target"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=15)
    asyncio.run(main(parser.parse_args().runs))
