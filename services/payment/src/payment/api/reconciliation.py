"""HTTP routes of reconciliation (对账) (placeholder: being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
