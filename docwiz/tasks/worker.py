"""`docwiz worker`: consume the Redis task queue until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal

from taskiq.api import run_receiver_task

from docwiz.config import Settings
from docwiz.tasks.broker import make_broker
from docwiz.tasks.jobs import register_tasks

logger = logging.getLogger("docwiz.tasks")


async def run_worker(settings: Settings) -> None:
    broker = make_broker(settings)
    register_tasks(broker)
    broker.is_worker_process = True
    await broker.startup()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    receiver = asyncio.create_task(run_receiver_task(broker, run_startup=False))
    logger.info("worker ready, consuming tasks")
    try:
        stopper = asyncio.create_task(stop.wait())
        done, _pending = await asyncio.wait(
            {receiver, stopper}, return_when=asyncio.FIRST_COMPLETED
        )
        if receiver in done:
            receiver.result()
        stopper.cancel()
    finally:
        receiver.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await receiver
        await broker.shutdown()
        logger.info("worker stopped")
