"""Image endpoints: upload, refusals, owner checks, signed links, no orphans."""

from __future__ import annotations

import io
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from aiohttp import FormData
from aiohttp.test_utils import TestClient
from PIL import Image

from docwiz.appkeys import DATABASE, PROVIDERS
from docwiz.config import Settings

FIXTURES = Path(__file__).parent / "fixtures"
PORTRAIT = (FIXTURES / "images" / "astronaut.jpg").read_bytes()


def form(data: bytes, filename: str = "photo.jpg", field: str = "file") -> FormData:
    body = FormData()
    body.add_field(
        field, data, filename=filename, content_type="application/octet-stream"
    )
    return body


async def upload(
    client: TestClient[Any, Any],
    headers: dict[str, str],
    data: bytes,
    filename: str = "photo.jpg",
) -> Any:
    return await client.post(
        "/api/images/upload", data=form(data, filename), headers=headers
    )


def stored_files(settings: Settings) -> list[Path]:
    root = settings.data_dir / "files"
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def image_rows(settings: Settings) -> int:
    with sqlite3.connect(settings.data_dir / "docwiz.db") as db:
        return int(db.execute("SELECT count(*) FROM images").fetchone()[0])


async def test_upload_returns_the_documented_body(
    client: TestClient[Any, Any], account: Any
) -> None:
    response = await upload(
        client, account.headers, PORTRAIT, "C:\\Users\\me\\face.jpg"
    )

    assert response.status == 200
    body = await response.json()
    assert set(body) == {
        "id",
        "url",
        "width",
        "height",
        "format",
        "size_bytes",
        "uploaded_at",
    }
    assert body["id"].startswith("img_")
    assert (body["width"], body["height"], body["format"]) == (512, 512, "JPEG")
    assert body["uploaded_at"].endswith("Z") or "+00:00" in body["uploaded_at"]

    got = await client.get(f"/api/images/{body['id']}", headers=account.headers)
    detail = await got.json()
    assert detail["user_id"] == account.id
    assert detail["original_filename"] == "face.jpg"

    fetched = await client.get(body["url"])
    assert fetched.status == 200
    assert fetched.content_type == "image/jpeg"
    assert len(await fetched.read()) == body["size_bytes"]


async def test_a_png_named_jpg_is_stored_as_png(
    client: TestClient[Any, Any], account: Any
) -> None:
    buffer = io.BytesIO()
    Image.open(io.BytesIO(PORTRAIT)).save(buffer, "PNG")

    response = await upload(client, account.headers, buffer.getvalue(), "photo.jpg")

    assert response.status == 200
    assert (await response.json())["format"] == "PNG"


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"GIF89a" + b"\x00" * 200, "unsupported_format"),
        (b"just some text, not a photo", "unsupported_format"),
        (PORTRAIT[: len(PORTRAIT) // 3], "corrupt"),
        (
            (FIXTURES / "images" / "bomb_50000x50000.png").read_bytes(),
            "decompression_bomb",
        ),
    ],
    ids=["gif", "text", "truncated", "bomb"],
)
async def test_refusals_are_400_with_a_reason(
    client: TestClient[Any, Any],
    account: Any,
    settings: Settings,
    data: bytes,
    code: str,
) -> None:
    response = await upload(client, account.headers, data)

    assert response.status == 400
    body = await response.json()
    assert body["code"] == code
    assert body["detail"]
    assert image_rows(settings) == 0
    assert stored_files(settings) == []


async def test_oversize_upload_is_refused(make_client: Any, tmp_path: Path) -> None:
    from docwiz.appkeys import TOKENS
    from docwiz.services.accounts import create_user

    settings = Settings(data_dir=tmp_path / "small", max_upload_mb=1)
    client = await make_client(settings)
    async with client.app[DATABASE].session() as session:
        user = await create_user(session, "big@example.com", "Correct-Horse-42")
    token, _ = client.app[TOKENS].issue(user.id)

    oversize = b"\xff\xd8\xff\xe0" + bytes(1024 * 1024)
    response = await upload(client, {"Authorization": f"Bearer {token}"}, oversize)

    assert response.status == 400
    body = await response.json()
    assert body["code"] == "too_large"
    assert "1 MB" in body["detail"] or "MB" in body["detail"]
    assert stored_files(settings) == []


async def test_missing_file_field_and_wrong_content_type(
    client: TestClient[Any, Any], account: Any
) -> None:
    no_field = await client.post(
        "/api/images/upload",
        data=form(PORTRAIT, field="photo"),
        headers=account.headers,
    )
    json_body = await client.post(
        "/api/images/upload", json={}, headers=account.headers
    )

    assert no_field.status == 400
    assert "'file'" in (await no_field.json())["detail"]
    assert json_body.status == 400
    assert "multipart/form-data" in (await json_body.json())["detail"]


async def test_upload_needs_a_token(client: TestClient[Any, Any]) -> None:
    response = await client.post("/api/images/upload", data=form(PORTRAIT))

    assert response.status == 401


async def test_another_users_image_is_403_and_a_missing_one_404(
    client: TestClient[Any, Any], make_account: Any
) -> None:
    owner = await make_account()
    stranger = await make_account()
    image_id = (await (await upload(client, owner.headers, PORTRAIT)).json())["id"]

    read = await client.get(f"/api/images/{image_id}", headers=stranger.headers)
    delete = await client.delete(f"/api/images/{image_id}", headers=stranger.headers)
    missing = await client.get(
        "/api/images/img_0000000000000000", headers=owner.headers
    )

    assert (read.status, delete.status, missing.status) == (403, 403, 404)
    assert (
        await client.get(f"/api/images/{image_id}", headers=owner.headers)
    ).status == 200


async def test_delete_removes_row_and_file(
    client: TestClient[Any, Any], account: Any, settings: Settings
) -> None:
    uploaded = await (await upload(client, account.headers, PORTRAIT)).json()
    assert len(stored_files(settings)) == 2  # the photo and its content-type sidecar

    response = await client.delete(
        f"/api/images/{uploaded['id']}", headers=account.headers
    )

    assert response.status == 200
    assert await response.json() == {
        "success": True,
        "message": f"Image {uploaded['id']} deleted successfully",
    }
    assert stored_files(settings) == []
    assert image_rows(settings) == 0
    assert (await client.get(uploaded["url"])).status == 404
    again = await client.get(f"/api/images/{uploaded['id']}", headers=account.headers)
    assert again.status == 404


async def test_metadata_is_stripped_before_storage(
    client: TestClient[Any, Any], account: Any
) -> None:
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    exif[0x0112] = 6  # Orientation: rotate 90 degrees clockwise to display
    buffer = io.BytesIO()
    Image.open(io.BytesIO(PORTRAIT)).crop((0, 0, 512, 400)).save(
        buffer, "JPEG", exif=exif
    )

    body = await (await upload(client, account.headers, buffer.getvalue())).json()
    stored = Image.open(io.BytesIO(await (await client.get(body["url"])).read()))

    assert (body["width"], body["height"]) == (400, 512)
    assert dict(stored.getexif()) == {}


async def test_failed_database_write_leaves_no_file(
    client: TestClient[Any, Any], account: Any, settings: Settings
) -> None:
    database = client.app[DATABASE]
    real_session = database.session

    def failing_session() -> Any:
        raise ConnectionError("database went away")

    database.session = failing_session  # type: ignore[method-assign]
    try:
        response = await upload(client, account.headers, PORTRAIT)
    finally:
        database.session = real_session  # type: ignore[method-assign]

    assert response.status in (401, 500)
    assert stored_files(settings) == []


async def test_failed_file_delete_keeps_the_row(
    client: TestClient[Any, Any], account: Any, settings: Settings
) -> None:
    uploaded = await (await upload(client, account.headers, PORTRAIT)).json()
    storage = client.app[PROVIDERS].storage

    async def broken_delete(key: str) -> None:
        raise OSError("disk unavailable")

    real_delete = storage.delete
    storage.delete = broken_delete  # type: ignore[method-assign]
    try:
        response = await client.delete(
            f"/api/images/{uploaded['id']}", headers=account.headers
        )
    finally:
        storage.delete = real_delete  # type: ignore[method-assign]

    assert response.status == 500
    assert image_rows(settings) == 1
    assert (await client.get(uploaded["url"])).status == 200


async def test_signed_links_refuse_tampering_and_expiry(
    client: TestClient[Any, Any], account: Any
) -> None:
    body = await (await upload(client, account.headers, PORTRAIT)).json()
    parts = urlsplit(body["url"])
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}

    def link(path: str = parts.path, **changes: str) -> str:
        return f"{path}?{urlencode({**query, **changes})}"

    other_key = parts.path.replace(body["id"], "img_ffffffffffffffff")
    assert (await client.get(link(other_key))).status == 403
    assert (
        await client.get(link(expires=str(int(query["expires"]) + 60)))
    ).status == 403
    assert (await client.get(link(signature="0" * 64))).status == 403
    assert (await client.get(parts.path)).status == 403

    from docwiz.builtin.local_storage import sign

    secret = client.app[PROVIDERS].storage._secret_key  # type: ignore[attr-defined]
    key = parts.path.removeprefix("/api/files/")
    expired = link(expires="1000", signature=sign(secret, key, 1000))
    response = await client.get(expired)
    assert response.status == 403
    assert "expired" in (await response.json())["detail"]


async def test_image_access_is_audited(
    client: TestClient[Any, Any], make_account: Any, admin: Any
) -> None:
    owner = await make_account()
    stranger = await make_account()
    image_id = (await (await upload(client, owner.headers, PORTRAIT)).json())["id"]
    await client.get(f"/api/images/{image_id}", headers=owner.headers)
    await client.get(f"/api/images/{image_id}", headers=stranger.headers)
    await client.delete(f"/api/images/{image_id}", headers=owner.headers)

    response = await client.get(
        "/api/audit", params={"resource_type": "image"}, headers=admin.headers
    )
    events = [
        (e["action"], e["user_id"], e["outcome"], e["resource_id"])
        for e in (await response.json())["events"]
    ]

    assert sorted(events) == sorted(
        [
            ("image.create", owner.id, "success", image_id),
            ("image.read", owner.id, "success", image_id),
            ("image.read", stranger.id, "denied", image_id),
            ("image.delete", owner.id, "success", image_id),
        ]
    )


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("multipart/form-data", b"--x\r\n\r\n"),
        (
            "multipart/form-data; boundary=x",
            b"--x\r\nBad Header\x00: y\r\n\r\nz\r\n--x--\r\n",
        ),
        ("multipart/form-data; boundary=x", b"not multipart at all"),
    ],
    ids=["no-boundary", "broken-part-headers", "no-parts"],
)
async def test_malformed_multipart_is_a_400(
    client: TestClient[Any, Any], account: Any, content_type: str, body: bytes
) -> None:
    response = await client.post(
        "/api/images/upload",
        data=body,
        headers={**account.headers, "Content-Type": content_type},
    )

    assert response.status == 400
    assert (await response.json())["code"] == "bad_request"
