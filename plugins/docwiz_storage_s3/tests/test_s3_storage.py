"""The S3 backend against a real moto S3 server: the shared storage contract,
then encryption, prefixes, credentials and bucket handling."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import uuid4

import pytest
from docwiz_storage_s3 import S3Storage

from docwiz.providers import StorageError
from docwiz.testing.storage_contract import (
    MIB,
    UPLOAD_LIMIT_BYTES,
    FetchUrl,
    StorageContract,
    StreamBroken,
    broken_stream,
    photo_bytes,
    read_all,
    split,
    stream_of,
)

pytestmark = pytest.mark.integration


class TestS3StorageContract(StorageContract):
    """The same contract the built-in local backend passes."""


async def keys_in(s3_admin: Any, bucket: str) -> list[str]:
    listed = await s3_admin.list_objects_v2(Bucket=bucket)
    return sorted(item["Key"] for item in listed.get("Contents", []))


# -- server-side encryption --------------------------------------------------


async def test_sse_is_requested_for_a_single_request_upload(
    make_storage: Any, s3_options: dict[str, Any], s3_admin: Any
) -> None:
    storage = make_storage(sse="AES256")

    await storage.put("images/img_1.jpg", stream_of([b"jpeg"]), "image/jpeg")
    head = await s3_admin.head_object(
        Bucket=s3_options["bucket"], Key="images/img_1.jpg"
    )

    assert head["ServerSideEncryption"] == "AES256"


async def test_sse_is_requested_for_a_multipart_upload(
    make_storage: Any, s3_options: dict[str, Any], s3_admin: Any
) -> None:
    storage = make_storage(sse="aws:kms", sse_kms_key_id="alias/docwiz")
    photo = photo_bytes(UPLOAD_LIMIT_BYTES, seed=11)

    await storage.put("images/img_2.jpg", stream_of(split(photo, [MIB])), "image/jpeg")
    head = await s3_admin.head_object(
        Bucket=s3_options["bucket"], Key="images/img_2.jpg"
    )

    assert head["ServerSideEncryption"] == "aws:kms"
    assert head["ETag"].strip('"').endswith("-2")  # two parts of 8 MiB at most


async def test_without_sse_nothing_is_requested(
    storage: S3Storage, s3_options: dict[str, Any], s3_admin: Any
) -> None:
    await storage.put("images/img_3.jpg", stream_of([b"jpeg"]), "image/jpeg")

    head = await s3_admin.head_object(
        Bucket=s3_options["bucket"], Key="images/img_3.jpg"
    )

    assert "ServerSideEncryption" not in head


# -- prefix ------------------------------------------------------------------


async def test_prefix_is_put_before_every_key(
    make_storage: Any, s3_options: dict[str, Any], s3_admin: Any, fetch_url: FetchUrl
) -> None:
    bucket = s3_options["bucket"]
    clinic_a = make_storage(prefix="/clinic-a/")
    clinic_b = make_storage(prefix="clinic-b")

    await clinic_a.put("images/img_1.jpg", stream_of([b"a's photo"]), "image/jpeg")
    url = await clinic_a.url("images/img_1.jpg", 60)

    assert await keys_in(s3_admin, bucket) == ["clinic-a/images/img_1.jpg"]
    assert urlsplit(url).path == f"/{bucket}/clinic-a/images/img_1.jpg"
    assert (await fetch_url(url)).body == b"a's photo"
    assert not await clinic_b.exists("images/img_1.jpg")

    await clinic_b.delete("images/img_1.jpg")
    assert await read_all(clinic_a, "images/img_1.jpg") == b"a's photo"

    await clinic_a.delete("images/img_1.jpg")
    assert await keys_in(s3_admin, bucket) == []


# -- uploads -----------------------------------------------------------------


async def test_a_failed_multipart_upload_is_aborted(
    storage: S3Storage, s3_options: dict[str, Any], s3_admin: Any
) -> None:
    chunks = split(photo_bytes(17 * MIB, seed=12), [MIB])

    with pytest.raises(StreamBroken):
        await storage.put("images/img_4.jpg", broken_stream(chunks), "image/jpeg")

    uploads = await s3_admin.list_multipart_uploads(Bucket=s3_options["bucket"])
    assert uploads.get("Uploads", []) == []
    assert await keys_in(s3_admin, s3_options["bucket"]) == []


async def test_a_small_object_goes_up_in_one_request(
    storage: S3Storage, s3_options: dict[str, Any], s3_admin: Any
) -> None:
    await storage.put("images/img_5.jpg", stream_of([b"x"] * 1000), "image/jpeg")

    head = await s3_admin.head_object(
        Bucket=s3_options["bucket"], Key="images/img_5.jpg"
    )

    assert "-" not in head["ETag"]
    assert (await storage.stat("images/img_5.jpg")).size_bytes == 1000


async def test_presigned_url_carries_its_lifetime(storage: S3Storage) -> None:
    await storage.put("claims/claim_1.pdf", stream_of([b"%PDF"]), "application/pdf")

    query = parse_qs(urlsplit(await storage.url("claims/claim_1.pdf", 300)).query)

    assert query["X-Amz-Expires"] == ["300"]
    assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]


async def test_the_client_is_reopened_after_close(storage: S3Storage) -> None:
    await storage.put("images/img_6.jpg", stream_of([b"before"]), "image/jpeg")
    await storage.close()

    assert await read_all(storage, "images/img_6.jpg") == b"before"


# -- credentials and buckets -------------------------------------------------


async def test_credentials_fall_back_to_the_aws_environment(
    make_storage: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    without_keys = make_storage(access_key_id=None, secret_access_key=None)
    with pytest.raises(StorageError, match="credentials"):
        await without_keys.check()

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    from_environment = make_storage(access_key_id=None, secret_access_key=None)

    await from_environment.check()
    await from_environment.put("images/img_7.jpg", stream_of([b"ok"]), "image/jpeg")
    assert await read_all(from_environment, "images/img_7.jpg") == b"ok"


async def test_check_fails_for_a_missing_bucket(make_storage: Any) -> None:
    storage = make_storage(bucket="docwiz-no-such-bucket")

    with pytest.raises(StorageError, match="docwiz-no-such-bucket"):
        await storage.check()


async def test_check_fails_when_the_endpoint_is_unreachable(
    make_storage: Any,
) -> None:
    # A port that was just free on this machine, so nothing answers there.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    storage = make_storage(endpoint_url=f"http://127.0.0.1:{closed_port}")

    with pytest.raises(StorageError, match="unreachable"):
        await storage.check()


async def test_create_bucket_makes_a_missing_bucket(
    make_storage: Any, s3_admin: Any
) -> None:
    new_bucket = f"docwiz-created-{uuid4().hex[:12]}"
    options = {"bucket": new_bucket, "region": "eu-west-1", "create_bucket": "true"}

    await make_storage(**options).check()
    again = make_storage(**options)
    await again.check()
    await again.put("images/img_8.jpg", stream_of([b"jpeg"]), "image/jpeg")

    location = await s3_admin.get_bucket_location(Bucket=new_bucket)
    assert location["LocationConstraint"] == "eu-west-1"
    assert await keys_in(s3_admin, new_bucket) == ["images/img_8.jpg"]
