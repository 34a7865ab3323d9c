"""Imports every module that defines tables, so the metadata is complete."""

from docwiz.db import models  # noqa: F401
