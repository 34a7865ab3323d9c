"""Imports every module that defines tables, so the metadata is complete."""

import docwiz.db.models
import docwiz.db.models_accounts
import docwiz.db.models_images
import docwiz.db.models_visualizations
