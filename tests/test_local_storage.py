"""The built-in local storage backend: the shared storage contract, plus the
signed URLs the core's file route honours."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pluggy
import pytest

from docwiz import hookspecs
from docwiz.builtin import local_storage
from docwiz.builtin.local_storage import (
    FILES_ROUTE,
    LocalStorage,
    SignatureExpired,
    SignatureInvalid,
    SignedUrlError,
    build_local_storage,
    sign,
)
from docwiz.providers import (
    ObjectNotFound,
    ProviderContext,
    StorageBackend,
    StorageError,
    StoredObject,
)
from docwiz.testing.storage_contract import (
    FetchedObject,
    FetchUrl,
    StorageContract,
    StreamBroken,
    broken_stream,
    read_all,
    stream_of,
)

SECRET = b"test-secret-key-for-signing-file-urls"


def context_for(data_dir: Path, **options: str) -> ProviderContext:
    return ProviderContext(
        name="local",
        options=options,
        data_dir=data_dir,
        mode="embedded",
        secret_key=SECRET,
    )


def url_parts(url: str) -> tuple[str, str, str]:
    """Split a file URL into what the core's route receives: key, expires,
    signature."""
    parts = urlsplit(url)
    assert parts.path.startswith(FILES_ROUTE), url
    query = parse_qs(parts.query, strict_parsing=True)
    return (
        parts.path.removeprefix(FILES_ROUTE),
        query["expires"][0],
        query["signature"][0],
    )


@pytest.fixture
async def storage(tmp_path: Path) -> AsyncIterator[LocalStorage]:
    backend = build_local_storage(context_for(tmp_path))
    yield backend
    await backend.close()


@pytest.fixture
def fetch_url(storage: LocalStorage) -> FetchUrl:
    async def fetch(url: str) -> FetchedObject:
        chunks, stored = await storage.open_signed(*url_parts(url))
        body = b"".join([chunk async for chunk in chunks])
        assert len(body) == stored.size_bytes
        return FetchedObject(body, stored.content_type)

    return fetch


class TestLocalStorageContract(StorageContract):
    """The same contract every storage plugin passes."""


# -- where files live --------------------------------------------------------


async def test_files_live_under_the_data_folder(tmp_path: Path) -> None:
    backend = build_local_storage(context_for(tmp_path))

    await backend.put("images/img_1.jpg", stream_of([b"jpeg bytes"]), "image/jpeg")

    assert (tmp_path / "files" / "images" / "img_1.jpg").read_bytes() == b"jpeg bytes"


async def test_root_option_moves_the_files(tmp_path: Path) -> None:
    absolute = build_local_storage(context_for(tmp_path, root=str(tmp_path / "x")))
    relative = build_local_storage(context_for(tmp_path, root="uploads"))

    await absolute.put("a.txt", stream_of([b"1"]), "text/plain")
    await relative.put("b.txt", stream_of([b"2"]), "text/plain")

    assert (tmp_path / "x" / "a.txt").read_bytes() == b"1"
    assert (tmp_path / "uploads" / "b.txt").read_bytes() == b"2"


async def test_content_type_survives_a_restart(tmp_path: Path) -> None:
    await build_local_storage(context_for(tmp_path)).put(
        "previews/viz_1", stream_of([b"webp"]), "image/webp"
    )

    restarted = build_local_storage(context_for(tmp_path))
    _, stored = await restarted.open_signed(
        *url_parts(await restarted.url("previews/viz_1", 60))
    )

    assert stored == StoredObject("previews/viz_1", 4, "image/webp")


async def test_a_file_without_a_recorded_type_is_typed_by_extension(
    storage: LocalStorage,
) -> None:
    (storage.root / "seeds").mkdir(parents=True)
    (storage.root / "seeds" / "case_1.png").write_bytes(b"png")
    (storage.root / "seeds" / "case_1").write_bytes(b"???")

    assert (await storage.stat("seeds/case_1.png")).content_type == "image/png"
    assert (await storage.stat("seeds/case_1")).content_type == (
        "application/octet-stream"
    )


async def test_a_failed_put_leaves_no_temporary_file(storage: LocalStorage) -> None:
    await storage.put("images/img_1.jpg", stream_of([b"kept"]), "image/jpeg")

    with pytest.raises(StreamBroken):
        await storage.put("images/img_2.jpg", broken_stream([b"x" * 10]), "image/jpeg")
    with pytest.raises(StreamBroken):
        await storage.put("images/img_1.jpg", broken_stream([b"y" * 10]), "image/png")

    left = sorted(p.name for p in (storage.root / "images").iterdir())
    assert left == [".img_1.jpg.content-type", "img_1.jpg"]
    assert (await storage.stat("images/img_1.jpg")).content_type == "image/jpeg"


async def test_delete_removes_the_recorded_type_too(storage: LocalStorage) -> None:
    await storage.put("images/img_1.jpg", stream_of([b"jpeg"]), "image/jpeg")

    await storage.delete("images/img_1.jpg")

    assert list((storage.root / "images").iterdir()) == []


async def test_a_content_type_that_could_split_headers_is_refused(
    storage: LocalStorage,
) -> None:
    with pytest.raises(ValueError, match="content type"):
        await storage.put("a.txt", stream_of([b"x"]), "text/plain\r\nX-Evil: 1")
    assert not await storage.exists("a.txt")


async def test_check_fails_when_the_folder_cannot_be_made(tmp_path: Path) -> None:
    (tmp_path / "occupied").write_bytes(b"a file where the folder should be")
    backend = build_local_storage(context_for(tmp_path, root="occupied"))

    with pytest.raises(StorageError, match="not writable"):
        await backend.check()


def test_an_empty_secret_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="secret key"):
        LocalStorage(tmp_path, secret_key=b"")


def test_the_module_registers_the_local_backend(tmp_path: Path) -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(local_storage)

    providers = [p for ps in manager.hook.docwiz_storage_backends() for p in ps]

    assert [p.name for p in providers] == ["local"]
    assert isinstance(providers[0].factory(context_for(tmp_path)), StorageBackend)


# -- signed URLs -------------------------------------------------------------


@pytest.fixture
async def stored_photo(storage: LocalStorage) -> str:
    await storage.put("images/img_1.jpg", stream_of([b"a", b"photo"]), "image/jpeg")
    return "images/img_1.jpg"


async def test_url_has_the_documented_shape(
    storage: LocalStorage, stored_photo: str
) -> None:
    before = int(time.time())

    key, expires, signature = url_parts(await storage.url(stored_photo, 900))

    assert key == stored_photo
    assert before + 900 <= int(expires) <= int(time.time()) + 900
    assert signature == sign(SECRET, key, int(expires))
    assert len(signature) == 64


async def test_base_url_option_makes_urls_absolute(tmp_path: Path) -> None:
    backend = build_local_storage(
        context_for(tmp_path, base_url="https://docwiz.example.org/")
    )

    url = await backend.url("images/img_1.jpg", 60)

    assert url.startswith("https://docwiz.example.org/api/files/images/img_1.jpg?")


async def test_url_needs_a_positive_lifetime(storage: LocalStorage) -> None:
    with pytest.raises(ValueError, match="expires_in"):
        await storage.url("images/img_1.jpg", 0)


async def test_a_genuine_url_opens_the_object(
    storage: LocalStorage, stored_photo: str
) -> None:
    key, expires, signature = url_parts(await storage.url(stored_photo, 60))

    chunks, stored = await storage.open_signed(key, expires, signature)

    assert stored == StoredObject(stored_photo, 6, "image/jpeg")
    assert b"".join([c async for c in chunks]) == b"aphoto"


async def test_a_url_is_honoured_until_its_expiry_second(
    storage: LocalStorage, stored_photo: str
) -> None:
    key, expires, signature = url_parts(await storage.url(stored_photo, 60))

    chunks, _ = await storage.open_signed(key, expires, signature, now=int(expires))
    await chunks.aclose()

    with pytest.raises(SignatureExpired):
        await storage.open_signed(key, expires, signature, now=int(expires) + 1)


async def test_an_expired_url_is_refused(storage: LocalStorage) -> None:
    expires = int(time.time()) - 1
    key = "images/img_1.jpg"

    with pytest.raises(SignatureExpired) as refused:
        await storage.open_signed(key, str(expires), sign(SECRET, key, expires))

    assert isinstance(refused.value, SignedUrlError)


async def test_a_tampered_signature_is_refused(
    storage: LocalStorage, stored_photo: str
) -> None:
    key, expires, signature = url_parts(await storage.url(stored_photo, 60))
    flipped = ("0" if signature[0] != "0" else "1") + signature[1:]

    with pytest.raises(SignatureInvalid) as refused:
        await storage.open_signed(key, expires, flipped)

    assert isinstance(refused.value, SignedUrlError)


async def test_a_signature_for_another_key_is_refused(
    storage: LocalStorage, stored_photo: str
) -> None:
    await storage.put("images/img_2.jpg", stream_of([b"someone else"]), "image/jpeg")
    _, expires, signature = url_parts(await storage.url(stored_photo, 60))

    with pytest.raises(SignatureInvalid):
        await storage.open_signed("images/img_2.jpg", expires, signature)


async def test_an_extended_expiry_is_refused(
    storage: LocalStorage, stored_photo: str
) -> None:
    key, expires, signature = url_parts(await storage.url(stored_photo, 60))

    with pytest.raises(SignatureInvalid):
        await storage.open_signed(key, str(int(expires) + 86400), signature)


async def test_a_url_signed_by_another_install_is_refused(
    tmp_path: Path, storage: LocalStorage, stored_photo: str
) -> None:
    other = LocalStorage(tmp_path / "other", secret_key=b"another install's key")
    key, expires, signature = url_parts(await other.url(stored_photo, 60))

    with pytest.raises(SignatureInvalid):
        await storage.open_signed(key, expires, signature)


@pytest.mark.parametrize(
    "expires", ["", "soon", "-5", "1e12", "1.5", " 1700000000", "9" * 13, "\u0661"]
)
async def test_a_malformed_expiry_is_refused(
    storage: LocalStorage, stored_photo: str, expires: str
) -> None:
    with pytest.raises(SignatureInvalid, match="expires"):
        await storage.open_signed(stored_photo, expires, "0" * 64)


@pytest.mark.parametrize(
    "signature", ["", "abc", "g" * 64, "0" * 63, "0" * 65, "\u00e9" * 64]
)
async def test_a_malformed_signature_is_refused(
    storage: LocalStorage, stored_photo: str, signature: str
) -> None:
    with pytest.raises(SignatureInvalid, match="signature"):
        await storage.open_signed(stored_photo, str(int(time.time()) + 60), signature)


async def test_a_signed_path_traversal_key_is_refused(
    tmp_path: Path, storage: LocalStorage
) -> None:
    # Even a correct HMAC cannot reach outside the storage folder.
    (tmp_path / "secrets.txt").write_bytes(b"not for clients")
    expires = int(time.time()) + 60

    for key in ("../secrets.txt", "images/../../secrets.txt", "/etc/passwd"):
        with pytest.raises(SignatureInvalid):
            await storage.open_signed(key, str(expires), sign(SECRET, key, expires))


async def test_a_valid_url_for_a_deleted_object_is_not_found(
    storage: LocalStorage, stored_photo: str
) -> None:
    parts = url_parts(await storage.url(stored_photo, 60))
    await storage.delete(stored_photo)

    with pytest.raises(ObjectNotFound):
        await storage.open_signed(*parts)


async def test_an_unsafe_key_cannot_be_signed(storage: LocalStorage) -> None:
    for key in ("../secrets.txt", "/etc/passwd", "images\\img_1.jpg"):
        with pytest.raises(ValueError):
            await storage.url(key, 60)


async def test_open_signed_reads_the_bytes_it_measured(
    storage: LocalStorage, stored_photo: str
) -> None:
    # The size comes from the open file, so a later overwrite does not make
    # the response disagree with its Content-Length.
    chunks, stored = await storage.open_signed(
        *url_parts(await storage.url(stored_photo, 60))
    )
    await storage.put(stored_photo, stream_of([b"a much longer photo"]), "image/png")

    body = b"".join([c async for c in chunks])

    assert (body, stored.size_bytes, stored.content_type) == (
        b"aphoto",
        6,
        "image/jpeg",
    )
    assert await read_all(storage, stored_photo) == b"a much longer photo"
