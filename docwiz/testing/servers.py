"""Start real PostgreSQL and Redis servers on 127.0.0.1 for integration tests."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


class ServerUnavailable(RuntimeError):
    """A server binary is missing; the message says which package to install."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_for_port(port: int, timeout: float, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"server on port {port} exited with {process.returncode}"
            )
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port} after {timeout} s")


@contextmanager
def redis_server() -> Iterator[str]:
    """A throw-away Redis; yields its URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise ServerUnavailable(
            "redis-server is not installed (apt-get install redis-server)"
        )
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, 10, process)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(10)


def _postgres_bin(name: str) -> str:
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        raise ServerUnavailable(
            "PostgreSQL is not installed (apt-get install postgresql)"
        )
    return found


@contextmanager
def postgres_server() -> Iterator[str]:
    """A throw-away PostgreSQL cluster in a new temporary folder; yields its URL.

    ``initdb`` refuses to run as root, so as root the cluster belongs to the
    ``postgres`` system user and its commands run through ``runuser``; the
    folder is made directly under the system temp folder, which that user can
    reach (pytest's own temp folders are private to root).
    """
    as_root = os.geteuid() == 0
    prefix = ["runuser", "-u", "postgres", "--"] if as_root else []
    base = Path(tempfile.mkdtemp(prefix="docwiz-pg-"))
    data = base / "pgdata"
    data.mkdir()
    if as_root:
        shutil.chown(base, "postgres")
        shutil.chown(data, "postgres")
    port = free_port()
    subprocess.run(
        [
            *prefix,
            _postgres_bin("initdb"),
            "-D",
            str(data),
            "-U",
            "docwiz",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        ],
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    process = subprocess.Popen(
        [
            *prefix,
            _postgres_bin("postgres"),
            "-D",
            str(data),
            "-p",
            str(port),
            "-h",
            "127.0.0.1",
            "-k",
            str(data),
            "-c",
            "fsync=off",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, 20, process)
        deadline = time.monotonic() + 10
        while True:
            created = subprocess.run(
                [
                    *prefix,
                    _postgres_bin("createdb"),
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "-U",
                    "docwiz",
                    "docwiz",
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
            )
            if created.returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(created.stderr.decode(errors="replace"))
            time.sleep(0.2)
        yield f"postgresql+asyncpg://docwiz@127.0.0.1:{port}/docwiz"
    finally:
        process.terminate()
        process.wait(20)
        shutil.rmtree(base, ignore_errors=True)


@contextmanager
def moto_s3_server() -> Iterator[str]:
    """A moto server speaking the S3 protocol on 127.0.0.1; yields its URL."""
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        raise ServerUnavailable(f"moto[server] is not installed: {error}") from None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    try:
        host, port = server.get_host_and_port()
        yield f"http://{host}:{port}"
    finally:
        server.stop()
