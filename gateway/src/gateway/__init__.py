"""Utilis gateway: the OAuth2 authorization server and front door."""

__version__ = "0.1.0"
