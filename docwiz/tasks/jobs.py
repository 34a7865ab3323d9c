"""Task bodies, registered by name on whichever broker the process uses."""

from __future__ import annotations

import os
import socket

from taskiq import AsyncBroker


async def ping() -> dict[str, object]:
    """Answer with the worker's host and process id (proves a worker runs)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


TASKS = {"docwiz.ping": ping}


def register_tasks(broker: AsyncBroker) -> None:
    for name, function in TASKS.items():
        broker.register_task(function, task_name=name)
