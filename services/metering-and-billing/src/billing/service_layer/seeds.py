"""``metering-and-billing seed-tariffs``: load the plan files under ``seeds/tariffs/`` idempotently.

A seed file is a whole domain plan (``TariffPlan``: several versions). Each of its versions is published
like an API publication (same checks, same ``billing.tariff.published`` event), in version order, one
transaction per version. A version already stored with the same document is left alone, so a second run
publishes nothing; a stored version that differs from the file is reported, never overwritten (a published
version is immutable: publish a new version instead).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from billing.adapters.orm import TariffPlanVersion
from billing.domain.tariff_plans import TariffPlan
from billing.service_layer.tariffs import NewVersion, build_plan, publish_version
from utilis_shared.db import UnitOfWork
from utilis_shared.settings import ServiceSettings

SEED_ACTOR = "seed-tariffs"


@dataclass
class SeedSummary:
    published: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    differing: list[str] = field(default_factory=list)

    def to_lines(self) -> list[str]:
        counts = (len(self.published), len(self.unchanged), len(self.differing))
        lines = ["published {}, unchanged {}, differing {}".format(*counts)]
        lines += [f"  published {v}" for v in self.published]
        lines += [f"  DIFFERS from the stored version (left as stored): {v}" for v in self.differing]
        return lines


def versions_of_seed(plan: TariffPlan) -> list[NewVersion]:
    document = plan.model_dump(mode="json")
    return [
        NewVersion(
            code=plan.code,
            name=plan.name,
            utility=plan.utility.value,
            customer_class=plan.customer_class.value,
            region=plan.region,
            volume_unit=document["volume_unit"],
            effective_from=version.effective_from,
            note=version.note,
            components=entry["components"],
            tier_price_adjustments=document["tier_price_adjustments"],
            expected_version=version.version,
        )
        for version, entry in zip(plan.versions, document["versions"], strict=True)
    ]


async def _stored(session: AsyncSession, code: str, version: int) -> TariffPlanVersion | None:
    stmt = select(TariffPlanVersion).where(
        TariffPlanVersion.code == code, TariffPlanVersion.version == version
    )
    return (await session.execute(stmt)).scalar_one_or_none()


async def load_seeds(
    session_factory: async_sessionmaker[AsyncSession], settings: ServiceSettings, paths: list[Path]
) -> SeedSummary:
    summary = SeedSummary()
    for path in sorted(paths):
        plan = TariffPlan.model_validate_json(path.read_text(encoding="utf-8"))
        for data in versions_of_seed(plan):
            assert data.expected_version is not None
            label = f"{data.code} v{data.expected_version}"
            uow = UnitOfWork(session_factory, settings)
            async with uow:
                stored = await _stored(uow.session, data.code, data.expected_version)
                if stored is not None:
                    expected = build_plan(data, data.expected_version).model_dump(mode="json")
                    (summary.unchanged if stored.plan == expected else summary.differing).append(label)
                    continue
                await publish_version(uow, published_by=SEED_ACTOR, data=data)
                await uow.commit()
                summary.published.append(label)
    return summary
