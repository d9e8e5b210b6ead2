"""Utilis payment service: payment orders, channels, callbacks, refunds, reconciliation."""

__version__ = "0.1.0"
