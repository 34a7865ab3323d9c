"""Schemathesis fuzzes every documented operation of a real `docwiz serve`:
no generated request may get a 5xx answer."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import aiohttp
import pytest

from docwiz.testing.servers import free_port

pytestmark = pytest.mark.integration

ADMIN = {"email": "fuzz-admin@example.com", "password": "Fuzzing-Admin-77"}


async def _wait_for_token(base: str, process: subprocess.Popen[bytes]) -> str:
    async with aiohttp.ClientSession() as session:
        for _ in range(300):
            assert process.poll() is None, "docwiz serve exited early"
            try:
                async with session.post(f"{base}/api/auth/login", json=ADMIN) as reply:
                    if reply.status == 200:
                        token: str = (await reply.json())["access_token"]
                        return token
            except aiohttp.ClientConnectionError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("docwiz serve did not start in 30 s")


async def test_no_generated_request_gets_a_server_error(tmp_path: Path) -> None:
    runner = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert runner, "schemathesis is part of the test extras: pip install -e '.[test]'"
    port = free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("DOCWIZ_")},
        "DOCWIZ_DATA_DIR": str(tmp_path / "var"),
        "DOCWIZ_RATE_LIMIT_PER_HOUR": "1000000",
        "DOCWIZ_ADMIN_EMAIL": ADMIN["email"],
        "DOCWIZ_ADMIN_PASSWORD": ADMIN["password"],
    }
    # The log goes to a file: thousands of access lines would fill a pipe
    # nobody reads while the fuzzer runs, and the server would block on it.
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log_file:
        server = subprocess.Popen(
            [sys.executable, "-m", "docwiz.cli", "serve", "--port", str(port)],
            env=env,
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        token = await _wait_for_token(base, server)
        fuzz = await asyncio.create_subprocess_exec(
            runner,
            "run",
            f"{base}/api/openapi.json",
            "--url",
            base,
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            "not_a_server_error",
            # Logging out or refreshing would revoke the token mid-run.
            "--exclude-path-regex",
            "auth/(logout|refresh)",
            "--max-examples",
            "25",
            "--seed",
            "20261203",
            "--no-color",
            cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        report, _ = await asyncio.wait_for(fuzz.communicate(), 600)
    finally:
        server.send_signal(signal.SIGTERM)
        await asyncio.to_thread(server.wait, 60)

    log = log_path.read_text()
    assert fuzz.returncode == 0, report.decode()[-6000:] + log[-4000:]
    assert " 500 " not in log
    assert server.returncode == 0
