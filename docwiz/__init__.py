"""DocWiz: procedure previews, cost estimates and pre-authorization paperwork."""

__version__ = "0.1.0"
