"""Fixtures for the S3 plugin's tests: a moto S3 server on 127.0.0.1, a fresh
bucket per test and a backend pointed at it."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from uuid import uuid4

import aiohttp
import pytest
from aiobotocore.session import get_session
from docwiz_storage_s3 import S3Storage, build_s3_storage
from yarl import URL

from docwiz.providers import ProviderContext
from docwiz.testing.storage_contract import FetchedObject, FetchUrl

MOTO_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    try:
        from moto.server import ThreadedMotoServer
    except ImportError as error:
        pytest.fail(f"the S3 tests need moto[server] installed: {error}")

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(autouse=True)
def no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Keep the machine's own AWS profile and credentials out of every test."""
    for name in (
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_S3",
    ):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-keys"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


@pytest.fixture
async def s3_admin(moto_endpoint: str) -> AsyncIterator[Any]:
    """A plain client for looking at the bucket behind the backend's back."""
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=moto_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as client:
        yield client


@pytest.fixture
async def bucket(s3_admin: Any) -> str:
    name = f"docwiz-{uuid4().hex[:16]}"
    await s3_admin.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_options(moto_endpoint: str, bucket: str) -> dict[str, Any]:
    return {"bucket": bucket, "endpoint_url": moto_endpoint, **MOTO_KEYS}


def s3_context(options: dict[str, Any]) -> ProviderContext:
    return ProviderContext(
        name="s3",
        options=options,
        data_dir=Path("/nonexistent"),
        mode="scale-out",
        secret_key=b"unused by s3",
    )


S3StorageFactory = Callable[..., S3Storage]


@pytest.fixture
async def make_storage(
    s3_options: dict[str, Any],
) -> AsyncIterator[S3StorageFactory]:
    """Build backends on the test bucket with some options changed (``None``
    drops an option); all are closed after the test."""
    built: list[S3Storage] = []

    def make(**changes: Any) -> S3Storage:
        options = {**s3_options, **changes}
        options = {name: value for name, value in options.items() if value is not None}
        built.append(build_s3_storage(s3_context(options)))
        return built[-1]

    yield make
    for backend in built:
        await backend.close()


@pytest.fixture
def storage(make_storage: S3StorageFactory) -> S3Storage:
    return make_storage()


@pytest.fixture
async def fetch_url() -> AsyncIterator[FetchUrl]:
    async with aiohttp.ClientSession() as session:

        async def fetch(url: str) -> FetchedObject:
            # encoded=True: re-quoting would break the presigned signature.
            async with session.get(URL(url, encoded=True)) as response:
                assert response.status == 200, await response.text()
                return FetchedObject(
                    await response.read(), response.headers["Content-Type"]
                )

        yield fetch
