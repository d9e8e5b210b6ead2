"""Utilis customer service: the 360° customer archive."""

__version__ = "0.1.0"
