"""A patient's whole visit in scale-out mode: two service instances sharing
PostgreSQL, Redis and S3 (moto), each request sent to either instance."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiobotocore.session import get_session
from cryptography.fernet import Fernet

from docwiz.app import create_app
from docwiz.cli import main
from docwiz.config import Settings
from docwiz.testing.servers import moto_s3_server, postgres_server, redis_server

pytestmark = pytest.mark.integration

BUCKET = "docwiz-photos"
S3_KEYS = {"access_key_id": "testing", "secret_access_key": "testing"}
PORTRAIT = (
    Path(__file__).parent / "fixtures" / "images" / "astronaut.jpg"
).read_bytes()
PROFILE = {
    "name": "Ada Example",
    "date_of_birth": "1985-06-01",
    "location": {"zip_code": "94103", "city": "San Francisco", "state": "CA"},
    "insurance_info": {
        "provider": "Blue Cross Blue Shield",
        "policy_number": "BC987654321",
        "plan_type": "PPO",
    },
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, str]]:
    with postgres_server() as pg, redis_server() as redis, moto_s3_server() as s3:
        yield {"postgres": pg, "redis": redis, "s3": s3}


@pytest.fixture
def no_real_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("AWS_PROFILE", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))


def scale_out_settings(servers: dict[str, str], tmp_path: Path, name: str) -> Settings:
    return Settings(
        mode="scale-out",
        data_dir=tmp_path / name,
        database_url=servers["postgres"],
        redis_url=servers["redis"],
        jwt_secret="k" * 48,
        encryption_keys=FERNET_KEY,
        storage_backend="s3",
        plugins={
            "s3": {
                "bucket": BUCKET,
                "endpoint_url": servers["s3"],
                "create_bucket": True,
                "prefix": "clinic-a",
                **S3_KEYS,
            }
        },
    )


FERNET_KEY = Fernet.generate_key().decode()


async def bucket_keys(endpoint: str) -> list[str]:
    async with get_session().create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    ) as s3:
        listing = await s3.list_objects_v2(Bucket=BUCKET)
        return sorted(item["Key"] for item in listing.get("Contents", []))


async def test_a_visit_spread_over_two_instances(
    servers: dict[str, str],
    tmp_path: Path,
    aiohttp_client: Any,
    monkeypatch: pytest.MonkeyPatch,
    no_real_aws: None,
) -> None:
    monkeypatch.setenv("DOCWIZ_MODE", "scale-out")
    monkeypatch.setenv("DOCWIZ_DATABASE_URL", servers["postgres"])
    monkeypatch.setenv("DOCWIZ_REDIS_URL", servers["redis"])
    monkeypatch.setenv("DOCWIZ_JWT_SECRET", "k" * 48)
    monkeypatch.setenv("DOCWIZ_ENCRYPTION_KEYS", FERNET_KEY)
    assert await asyncio.to_thread(main, ["migrate"]) == 0

    first = await aiohttp_client(create_app(scale_out_settings(servers, tmp_path, "a")))
    second = await aiohttp_client(
        create_app(scale_out_settings(servers, tmp_path, "b"))
    )
    either = itertools.cycle([first, second])

    async def call(method: str, path: str, **options: Any) -> Any:
        response = await getattr(next(either), method)(path, **options)
        body = await response.json()
        assert response.status < 300, (method, path, response.status, body)
        return body

    await call(
        "post",
        "/api/auth/register",
        json={"email": "ada@example.com", "password": "Sturdy-Password-9"},
    )
    login = await call(
        "post",
        "/api/auth/login",
        json={"email": "ada@example.com", "password": "Sturdy-Password-9"},
    )
    headers = {"Authorization": f"Bearer {login['access_token']}"}
    profile = await call("post", "/api/profiles", json=PROFILE, headers=headers)

    form = aiohttp.FormData()
    form.add_field("file", PORTRAIT, filename="ada.jpg", content_type="image/jpeg")
    image = await call("post", "/api/images/upload", data=form, headers=headers)
    stored = await bucket_keys(servers["s3"])
    assert len(stored) == 1
    assert stored[0].startswith("clinic-a/images/")
    assert stored[0].endswith(f"/{image['id']}.jpg")

    preview = await call(
        "post",
        "/api/visualizations",
        json={
            "image_id": image["id"],
            "procedure_id": "proc_rhinoplasty",
            "patient_id": profile["id"],
        },
        headers=headers,
    )
    assert preview["metadata"]["model"]
    async with aiohttp.ClientSession() as session:
        for url in (preview["before_image_url"], preview["after_image_url"]):
            assert url.startswith(servers["s3"])
            async with session.get(url) as fetched:
                assert fetched.status == 200

    similar = await call(
        "get", f"/api/visualizations/{preview['id']}/similar", headers=headers
    )
    assert similar["total_found"] > 0
    assert similar["similar_cases"][0]["procedure_type"] == "rhinoplasty"

    await call("delete", f"/api/images/{image['id']}", headers=headers)
    remaining = await bucket_keys(servers["s3"])
    assert not [
        key for key in remaining if "/images/" in key or "/visualizations/" in key
    ]

    await call("post", "/api/auth/logout", headers=headers)
    for client in (first, second):
        refused = await client.get("/api/auth/me", headers=headers)
        assert refused.status == 401
