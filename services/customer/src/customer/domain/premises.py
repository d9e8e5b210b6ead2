"""Premises: the structured address and its normalised key (one premise per real dwelling)."""

from __future__ import annotations

import re
import unicodedata

_SPACE = re.compile(r"\s+")


def _norm(part: str) -> str:
    # Full-width digits and letters (１２栋) become half-width; spaces go; case folds.
    return _SPACE.sub("", unicodedata.normalize("NFKC", part)).upper()


def _strip_suffix(part: str, *suffixes: str) -> str:
    p = _norm(part)
    for s in suffixes:
        if p.endswith(s) and len(p) > len(s):
            return p[: -len(s)]
    return p


def address_key(district: str, community: str, building: str, unit: str, room: str) -> str:
    """``南岗区|学府四道街小区|12|3|502``: equal for 12栋 / 12号楼 / １２, so one dwelling is one premise."""
    return "|".join(
        (
            _norm(district),
            _norm(community),
            _strip_suffix(building, "号楼", "栋", "楼", "幢", "号"),
            _strip_suffix(unit, "单元", "门"),
            _strip_suffix(room, "室", "号", "户"),
        )
    )


def format_address(district: str, community: str, building: str, unit: str, room: str) -> str:
    """The one-line form people read: ``南岗区学府四道街小区12栋3单元502室``."""
    _, _, b, u, r = address_key(district, community, building, unit, room).split("|")
    return f"{_norm(district)}{_norm(community)}{b}栋{u}单元{r}室"
