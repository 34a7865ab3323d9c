"""The S3 backend's settings and registration, checked without a server."""

from __future__ import annotations

from importlib.metadata import entry_points
from pathlib import Path

import docwiz_storage_s3
import pluggy
import pytest
from docwiz_storage_s3 import S3Options, S3Storage

from docwiz import hookspecs
from docwiz.providers import ProviderContext, StorageBackend


def context(**options: object) -> ProviderContext:
    return ProviderContext(
        name="s3",
        options=options,
        data_dir=Path("/nonexistent"),
        mode="scale-out",
        secret_key=b"unused by s3",
    )


@pytest.mark.parametrize("options", [{}, {"bucket": ""}, {"bucket": "  "}])
def test_a_missing_bucket_is_refused_by_name(options: dict[str, str]) -> None:
    with pytest.raises(ValueError, match=r"'bucket'.*DOCWIZ_PLUGINS__S3__BUCKET"):
        docwiz_storage_s3.build_s3_storage(context(**options))


def test_defaults() -> None:
    options = S3Options.from_options({"bucket": "docwiz-files"})

    assert options == S3Options(bucket="docwiz-files")
    assert options.region == "us-east-1"
    assert options.addressing_style == "auto"
    assert options.sse is None
    assert not options.create_bucket


def test_a_custom_endpoint_defaults_to_path_style() -> None:
    options = S3Options.from_options(
        {"bucket": "b12", "endpoint_url": "http://127.0.0.1:9000"}
    )

    assert options.addressing_style == "path"


@pytest.mark.parametrize(
    ("given", "kept"),
    [("", ""), ("/", ""), ("clinic-a", "clinic-a/"), ("/clinic-a/x/", "clinic-a/x/")],
)
def test_prefix_is_normalised(given: str, kept: str) -> None:
    assert S3Options.from_options({"bucket": "b12", "prefix": given}).prefix == kept


@pytest.mark.parametrize(
    ("given", "meant"),
    [("true", True), ("Yes", True), ("1", True), (True, True), ("false", False)],
)
def test_create_bucket_reads_strings_from_the_environment(
    given: object, meant: bool
) -> None:
    options = S3Options.from_options({"bucket": "b12", "create_bucket": given})

    assert options.create_bucket is meant


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"access_key_id": "AKIA"}, "secret_access_key"),
        ({"secret_access_key": "s3cr3t"}, "access_key_id"),
        ({"sse": "aes256"}, "'sse'"),
        ({"sse_kms_key_id": "alias/docwiz"}, "sse_kms_key_id"),
        ({"create_bucket": "maybe"}, "create_bucket"),
        ({"addressing_style": "dns"}, "addressing_style"),
    ],
)
def test_bad_options_are_refused_by_name(
    options: dict[str, str], complaint: str
) -> None:
    with pytest.raises(ValueError, match=complaint):
        S3Options.from_options({"bucket": "b12", **options})


async def test_url_lifetime_must_be_within_sigv4_limits() -> None:
    storage = S3Storage(S3Options(bucket="b12"))

    for expires_in in (0, -1, 7 * 24 * 3600 + 1):
        with pytest.raises(ValueError, match="expires_in"):
            await storage.url("images/img_1.jpg", expires_in)
    await storage.close()


def test_the_plugin_registers_the_s3_backend() -> None:
    manager = pluggy.PluginManager(hookspecs.PROJECT)
    manager.add_hookspecs(hookspecs)
    manager.register(docwiz_storage_s3)

    providers = [p for ps in manager.hook.docwiz_storage_backends() for p in ps]

    assert [p.name for p in providers] == ["s3"]
    assert isinstance(providers[0].factory(context(bucket="b12")), StorageBackend)


def test_the_distribution_declares_its_entry_point() -> None:
    found = {ep.name: ep.value for ep in entry_points(group="docwiz")}

    assert found.get("s3") == "docwiz_storage_s3"
