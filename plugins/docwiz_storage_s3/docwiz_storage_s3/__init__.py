"""DocWiz plugin: a storage backend named ``s3`` for Amazon S3 and
S3-compatible object stores."""

from __future__ import annotations

from collections.abc import Sequence

from docwiz.hookspecs import hookimpl
from docwiz.providers import Provider, StorageBackend
from docwiz_storage_s3.storage import S3Options, S3Storage, build_s3_storage

__all__ = ["S3Options", "S3Storage", "build_s3_storage", "docwiz_storage_backends"]


@hookimpl
def docwiz_storage_backends() -> Sequence[Provider[StorageBackend]]:
    return [
        Provider(
            "s3",
            build_s3_storage,
            "Objects in an S3 bucket, served through presigned URLs",
        )
    ]
