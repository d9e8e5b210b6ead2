"""Shapes the payment API's route modules share. Money is ``{"amount_fen", "currency"}``: integer fen."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel


class Money(BaseModel):
    amount_fen: int
    currency: Literal["CNY"] = "CNY"


def money(fen: int) -> dict[str, Any]:
    """An amount in fen as the API shows it."""
    return {"amount_fen": fen, "currency": "CNY"}
