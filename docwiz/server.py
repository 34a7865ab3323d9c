"""Running the service: listen, and on SIGTERM drain requests before closing.

aiohttp's own shutdown stops reading from open connections at once, so a
request whose body is still arriving (a photo upload) could never finish;
here the listener closes first and requests in flight get up to
``shutdown_timeout`` seconds to complete before connections are closed.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable

from aiohttp import web

from docwiz.config import Settings
from docwiz.logs import AccessLogger

logger = logging.getLogger("docwiz.server")


class InFlight:
    """Counts requests being handled, so shutdown can wait for them."""

    def __init__(self) -> None:
        self.count = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def started(self) -> None:
        self.count += 1
        self._idle.clear()

    def finished(self) -> None:
        self.count -= 1
        if self.count == 0:
            self._idle.set()

    async def wait_idle(self, within: float) -> bool:
        """True once no request is in flight; False if ``within`` seconds pass first."""
        try:
            await asyncio.wait_for(self._idle.wait(), within)
        except TimeoutError:
            return False
        return True


IN_FLIGHT = web.AppKey("in_flight", InFlight)


@web.middleware
async def count_in_flight(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    tracker = request.app[IN_FLIGHT]
    tracker.started()
    try:
        return await handler(request)
    finally:
        tracker.finished()


def install_in_flight_tracking(app: web.Application) -> None:
    app[IN_FLIGHT] = InFlight()
    app.middlewares.insert(0, count_in_flight)


async def serve(app: web.Application, settings: Settings) -> None:
    """Serve until SIGTERM or SIGINT, then drain and close."""
    runner = web.AppRunner(
        app,
        handle_signals=False,
        access_log_class=AccessLogger,
        access_log=logging.getLogger("docwiz.access"),
        shutdown_timeout=settings.shutdown_timeout,
    )
    await runner.setup()
    try:
        site = web.TCPSite(runner, settings.host, settings.port)
        await site.start()
        logger.info("serving on %s", ", ".join(_addresses(runner)))

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, stop.set)
        await stop.wait()

        tracker = app[IN_FLIGHT]
        logger.info(
            "stopping: no new connections; waiting up to %.0f s for %d requests",
            settings.shutdown_timeout,
            tracker.count,
        )
        await site.stop()
        if not await tracker.wait_idle(settings.shutdown_timeout):
            logger.warning("%d requests still running were cut off", tracker.count)
    finally:
        await runner.cleanup()
    logger.info("stopped")


def _addresses(runner: web.AppRunner) -> list[str]:
    found = []
    for address in runner.addresses:
        host, port = address[0], address[1]
        found.append(f"http://{host}:{port}")
    return found
