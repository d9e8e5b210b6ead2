"""``seed-tariffs`` publishes every version of every seed plan once; a second run publishes nothing, and a
stored version that differs from its file is reported, not overwritten."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import func, select

from billing.adapters.orm import TariffPlanVersion
from billing.domain.tariff_plans import TariffPlan
from billing.service_layer.seeds import load_seeds
from utilis_shared.db import outbox_messages

SEEDS = Path(__file__).resolve().parents[2] / "seeds" / "tariffs"


async def test_seeds_load_once(settings, session_factory, client, auth) -> None:
    files = sorted(SEEDS.glob("*.json"))
    plans = [TariffPlan.model_validate_json(p.read_text(encoding="utf-8")) for p in files]
    expected = sorted(f"{plan.code} v{v.version}" for plan in plans for v in plan.versions)
    assert len(files) >= 5

    first = await load_seeds(session_factory, settings, files)
    assert sorted(first.published) == expected and first.differing == []
    second = await load_seeds(session_factory, settings, files)
    assert second.published == [] and sorted(second.unchanged) == expected

    codes = [plan.code for plan in plans]
    async with session_factory() as s:
        rows = (
            await s.execute(
                select(TariffPlanVersion)
                .where(TariffPlanVersion.code.in_(codes))
                .order_by(TariffPlanVersion.code, TariffPlanVersion.version)
            )
        ).scalars()
        stored = {(r.code, r.version): r for r in rows}
        events = await s.scalar(
            select(func.count()).select_from(outbox_messages).where(outbox_messages.c.key.in_(codes))
        )
    assert len(stored) == len(expected) == events
    for plan in plans:
        for current, following in zip(plan.versions, plan.versions[1:], strict=False):
            row = stored[(plan.code, current.version)]
            assert row.effective_to == following.effective_from.fromordinal(
                following.effective_from.toordinal() - 1
            )
        assert stored[(plan.code, plan.versions[-1].version)].effective_to is None

    # The two-part heating plan quotes across its 2027 price change with the stored versions.
    response = await client.post(
        "/v1/tariff-plans/harbin-residential-heating-two-part/quote",
        json={
            "period_start": "2026-12-01",
            "period_end": "2027-02-01",
            "volume": "6.2",
            "heated_area_m2": "100",
        },
        headers=auth("agent"),
    )
    assert response.status_code == 200, response.text
    assert {line["plan_version"] for line in response.json()["lines"]} == {1, 2}


async def test_a_changed_seed_file_is_reported_not_applied(settings, session_factory, tmp_path) -> None:
    source = json.loads((SEEDS / "beijing-residential-gas-tiered.json").read_text(encoding="utf-8"))
    source["code"] = "t-seed-changed"
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(source, ensure_ascii=False), encoding="utf-8")
    assert len((await load_seeds(session_factory, settings, [path])).published) == 2

    source["versions"][0]["components"][0]["tiers"][0]["price"] = "9.99"
    path.write_text(json.dumps(source, ensure_ascii=False), encoding="utf-8")
    summary = await load_seeds(session_factory, settings, [path])
    assert summary.differing == ["t-seed-changed v1"] and summary.published == []
    async with session_factory() as s:
        row = await s.scalar(
            select(TariffPlanVersion).where(
                TariffPlanVersion.code == "t-seed-changed", TariffPlanVersion.version == 1
            )
        )
    assert row.plan["versions"][0]["components"][0]["tiers"][0]["price"] == "2.60"
