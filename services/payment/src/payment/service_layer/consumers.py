"""The consumer's one handler table (``payment consumer``)."""

from __future__ import annotations

from payment.service_layer import dues

registry = dues.registry
