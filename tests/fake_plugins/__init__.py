"""Plugins that exist only for the loader tests (imported by entry-point value)."""
