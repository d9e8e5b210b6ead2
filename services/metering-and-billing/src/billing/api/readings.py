"""HTTP routes of meter readings and heating telemetry (placeholder: being built)."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/v1")
