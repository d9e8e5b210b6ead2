"""Quotes: a period's usage priced by the engine over the stored versions of a plan, the account's own
data (household size, heated area, suspension) from billing_accounts, and the refusals."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.dialects.postgresql import insert

from billing.adapters.orm import BillingAccount

CLERK = ("billing_clerk",)


async def published(client, auth, *bodies) -> str:
    for body in bodies:
        response = await client.post("/v1/tariff-plans", json=body, headers=auth("billing_clerk"))
        assert response.status_code == 201, response.text
    return bodies[0]["code"]


async def add_account(session_factory, account_no: str, **values) -> None:
    row = {
        "account_no": account_no,
        "utility": "gas",
        "customer_class": "residential",
        "household_size": 3,
        "status": "active",
        "heated_area_m2": None,
        "last_event_at": datetime.now(UTC),
    } | values
    async with session_factory() as s:
        await s.execute(insert(BillingAccount).values(**row).on_conflict_do_nothing())
        await s.commit()


def amounts(quote: dict) -> list[tuple[str, int]]:
    return [(line["description"], line["amount"]["amount_fen"]) for line in quote["lines"]]


async def test_quote_fills_the_tiers_from_the_years_running_total(client, auth, gas_plan) -> None:
    code = await published(client, auth, gas_plan())
    body = {
        "period_start": "2026-03-01",
        "period_end": "2026-04-01",
        "volume": "100",
        "year_to_date_volume": "300",
    }
    response = await client.post(f"/v1/tariff-plans/{code}/quote", json=body, headers=auth("agent"))
    assert response.status_code == 200, response.text
    quote = response.json()
    # 300 m³ used this year: 50 m³ left in tier 1 (50 × 2.60 = 130.00 元), then 50 m³ in tier 2
    # (50 × 3.12 = 156.00 元): 286.00 元.
    assert amounts(quote) == [("第一阶梯 50 m³ × 2.60 元", 13000), ("第二阶梯 50 m³ × 3.12 元", 15600)]
    assert quote["total"] == {"amount_fen": 28600, "currency": "CNY"}
    assert [line["tier"] for line in quote["lines"]] == [1, 2]
    assert quote["year_to_date_volume_after"] == "400"


async def test_quote_splits_a_period_across_a_price_change_by_days(client, auth, gas_plan) -> None:
    first = gas_plan()
    second = gas_plan(code=first["code"], effective_from="2026-07-01")
    second["components"][0]["tiers"][0]["price"] = "2.70"
    code = await published(client, auth, first, second)
    body = {"period_start": "2026-06-01", "period_end": "2026-08-01", "volume": "61"}
    response = await client.post(f"/v1/tariff-plans/{code}/quote", json=body, headers=auth("billing_clerk"))
    assert response.status_code == 200, response.text
    quote = response.json()
    # 61 days, 61 m³: June's 30 days take 30 m³ at version 1 (30 × 2.60 = 78.00 元), July's 31 days take
    # 31 m³ at version 2 (31 × 2.70 = 83.70 元): 161.70 元.
    assert amounts(quote) == [
        ("2026-06-01至2026-06-30 第一阶梯 30 m³ × 2.60 元", 7800),
        ("2026-07-01至2026-07-31 第一阶梯 31 m³ × 2.70 元", 8370),
    ]
    assert [line["plan_version"] for line in quote["lines"]] == [1, 2]
    assert quote["total"]["amount_fen"] == 16170


async def test_quote_for_an_account_uses_its_household_size(client, auth, gas_plan, session_factory) -> None:
    plan = gas_plan()
    plan["components"][0]["household_widening"] = {"base_members": 4, "per_extra_member": ["50", "30"]}
    code = await published(client, auth, plan)
    await add_account(session_factory, "2000000601", household_size=6)
    body = {
        "period_start": "2026-03-01",
        "period_end": "2026-04-01",
        "volume": "100",
        "year_to_date_volume": "400",
        "account_no": "2000000601",
    }
    response = await client.post(
        f"/v1/tariff-plans/{code}/quote", json=body, headers=auth(accounts=["2000000601"])
    )
    assert response.status_code == 200, response.text
    # Six members: tier 1 widened by 2 × 50 to 450 m³. 400 used: 50 m³ at 2.60 (130.00 元), 50 m³ at 3.12
    # (156.00 元). Without the widening all 100 m³ would be in tier 2 and 3.
    assert [line["amount"]["amount_fen"] for line in response.json()["lines"]] == [13000, 15600]


async def test_quote_for_a_suspended_heating_account_uses_its_area_and_share(
    client, auth, new_code, session_factory
) -> None:
    code = await published(
        client,
        auth,
        {
            "code": new_code("heat"),
            "name": "测试 居民 按面积采暖",
            "utility": "heating",
            "customer_class": "residential",
            "effective_from": "2020-10-01",
            "components": [
                {
                    "kind": "area_season",
                    "price_per_m2": "29.00",
                    "season_starts_on": "10-20",
                    "season_ends_on": "04-20",
                    "suspension_share": "0.20",
                }
            ],
        },
    )
    await add_account(
        session_factory, "1000000702", utility="heating", status="suspended", heated_area_m2=Decimal("100.00")
    )
    body = {"period_start": "2026-10-20", "period_end": "2027-04-21", "account_no": "1000000702"}
    response = await client.post(f"/v1/tariff-plans/{code}/quote", json=body, headers=auth("agent"))
    assert response.status_code == 200, response.text
    # The whole season, 100 m² × 29.00 元 = 2,900.00 元, suspended: 20 % = 580.00 元.
    assert response.json()["total"]["amount_fen"] == 58000
    # Without the account the quote needs the area.
    del body["account_no"]
    response = await client.post(f"/v1/tariff-plans/{code}/quote", json=body, headers=auth("agent"))
    assert (response.status_code, response.json()["code"]) == (422, "usage_incomplete")


async def test_quote_refusals(client, auth, gas_plan, session_factory) -> None:
    code = await published(client, auth, gas_plan())
    url = f"/v1/tariff-plans/{code}/quote"
    ok = {"period_start": "2026-03-01", "period_end": "2026-04-01", "volume": "10"}

    async def refused(body, status, problem, headers=None):
        response = await client.post(url, json=body, headers=headers or auth("agent"))
        assert response.status_code == status, response.text
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["code"] == problem

    await refused(ok | {"period_start": "2025-12-01"}, 422, "no_tariff_in_force")
    await refused(ok | {"period_end": "2026-03-01"}, 422, "invalid_usage")
    await refused(ok | {"volume": "10.0001"}, 422, "invalid_usage")
    await refused(ok | {"volume": 10.5}, 422, "validation_failed")
    await refused(ok | {"volume": "-1"}, 422, "validation_failed")
    await refused(ok | {"account_no": "2999999999"}, 404, "account_not_found")
    await add_account(session_factory, "3000000803", utility="electricity")
    await refused(ok | {"account_no": "3000000803"}, 422, "plan_not_for_account")
    # A resident learns nothing about an account that is not theirs.
    await refused(ok | {"account_no": "3000000803"}, 404, "account_not_found", auth(accounts=["2000000001"]))
    response = await client.post("/v1/tariff-plans/no-such-plan/quote", json=ok, headers=auth("agent"))
    assert (response.status_code, response.json()["code"]) == (404, "tariff_plan_not_found")
