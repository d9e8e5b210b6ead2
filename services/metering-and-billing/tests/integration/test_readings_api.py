"""Readings through the app against the real PostgreSQL: manual entry, flags and the review queue, the
resident's self-report, bulk batches (re-sent: no duplicates), estimates and their true-up, bad input."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from decimal import Decimal

MONTHS = [datetime(2026, m, 1, 1, 0, tzinfo=UTC) for m in range(1, 9)]  # 09:00 Asia/Shanghai


async def post_reading(client, auth, account_no, value, at, who="technician", **extra):
    body = {"read_at": at.isoformat(), "value": str(value), **extra}
    headers = auth(who) if isinstance(who, str) else who
    return await client.post(f"/v1/accounts/{account_no}/readings", json=body, headers=headers)


INSTALLED_AT = datetime(2025, 11, 30, 16, 0, tzinfo=UTC)  # 2025-12-01 00:00 Asia/Shanghai
RATES = [Decimal("1.0"), Decimal("1.2"), Decimal("0.9"), Decimal("1.1"), Decimal("1.0"), Decimal("0.95")]


async def steady_history(client, auth, account_no, start=100, months=6):
    """Monthly readings after the installation reading (``start`` on 2025-12-01), about 1 a day with some
    spread (daily rates ``RATES``); returns the last value."""
    value, previous = Decimal(start), INSTALLED_AT
    for at, rate in zip(MONTHS[:months], RATES, strict=False):
        days = Decimal((at - previous).total_seconds()) / 86400
        value = (value + rate * days).quantize(Decimal("0.001"))
        previous = at
        response = await post_reading(client, auth, account_no, value, at)
        assert response.status_code == 201, response.text
        assert response.json()["status"] == "accepted", response.json()
    return value


async def test_a_manual_reading_is_accepted_with_its_consumption(client, auth, open_account, meter) -> None:
    m = meter(initial="100")
    account_no = await open_account(meters=[m])
    response = await post_reading(client, auth, account_no, "131.5", MONTHS[0])
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["status"] == "accepted"
    assert (body["source"], body["source_name_zh"]) == ("manual", "人工抄表")
    assert body["entered_by"] == "staff-technician"
    assert body["meter_serial"] == m.serial_no
    assert (Decimal(body["consumption"]), Decimal(body["volume"])) == (Decimal("31.5"), Decimal("31.5"))
    assert body["kind"] == "normal"
    assert body["previous_reading_id"] is not None  # the installation reading

    listed = (await client.get(f"/v1/accounts/{account_no}/readings", headers=auth("agent"))).json()
    assert [r["source"] for r in listed["items"]] == ["manual", "installation"]
    assert listed["items"][1]["value"] == "100.000"


async def test_a_value_below_the_previous_is_flagged_then_approved_or_rejected(
    client, auth, open_account, meter
) -> None:
    account_no = await open_account(meters=[meter(initial="1000")])
    assert (await post_reading(client, auth, account_no, 1200, MONTHS[0])).json()["status"] == "accepted"

    # 1200 -> 980: not near the top of a 5-digit register, not a new meter's start: a misread
    low = (await post_reading(client, auth, account_no, 980, MONTHS[1])).json()
    assert low["status"] == "pending_review"
    assert [f["code"] for f in low["flags"]] == ["value_decreased"]
    assert "疑似抄错" in low["flags"][0]["message_zh"]
    assert low["volume"] is None

    queue = await client.get(
        "/v1/readings/review-queue", params={"account_no": account_no}, headers=auth("billing_clerk")
    )
    assert queue.status_code == 200
    assert [r["id"] for r in queue.json()["items"]] == [low["id"]]

    # approving a reading whose consumption is undetermined needs the reviewer's figure
    refused = await client.post(f"/v1/readings/{low['id']}/approve", json={}, headers=auth("billing_clerk"))
    assert (refused.status_code, refused.json()["code"]) == (422, "consumption_required")
    rejected = await client.post(
        f"/v1/readings/{low['id']}/reject", json={"reason": "照片读数为 1280"}, headers=auth("billing_clerk")
    )
    assert rejected.status_code == 200, rejected.text
    assert (rejected.json()["status"], rejected.json()["review_note"]) == ("rejected", "照片读数为 1280")
    again = await client.post(f"/v1/readings/{low['id']}/approve", json={}, headers=auth("billing_clerk"))
    assert (again.status_code, again.json()["code"]) == (409, "reading_not_pending")
    queue = await client.get(
        "/v1/readings/review-queue", params={"account_no": account_no}, headers=auth("billing_clerk")
    )
    assert queue.json()["items"] == []

    # another misread, approved with the reviewer's consumption: billable from then on
    low2 = (await post_reading(client, auth, account_no, 990, MONTHS[2])).json()
    assert low2["status"] == "pending_review"
    approved = await client.post(
        f"/v1/readings/{low2['id']}/approve",
        json={"consumption": "40", "note": "表具更换未登记，已核实"},
        headers=auth("billing_clerk"),
    )
    assert approved.status_code == 200, approved.text
    body = approved.json()
    assert (body["status"], body["kind"], Decimal(body["volume"])) == ("accepted", "reviewed", Decimal(40))
    assert body["reviewed_by"] == "staff-billing_clerk"


async def test_a_rollover_near_the_top_of_the_register_is_accepted(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="99950")])  # a 5-digit gas register
    body = (await post_reading(client, auth, account_no, 20, MONTHS[0])).json()
    assert body["status"] == "accepted"
    assert (body["kind"], Decimal(body["volume"])) == ("rollover", Decimal(70))
    assert "rollover" in [f["code"] for f in body["flags"]]


async def test_consumption_far_off_the_history_is_flagged_by_median_and_mad(
    client, auth, open_account, meter
) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    last = await steady_history(client, auth, account_no, months=6)
    high = (await post_reading(client, auth, account_no, last + 300, MONTHS[6])).json()
    assert high["status"] == "pending_review"
    assert "consumption_high" in [f["code"] for f in high["flags"]]
    assert Decimal(high["consumption"]) == 300  # determined: approving needs no figure
    approved = await client.post(f"/v1/readings/{high['id']}/approve", headers=auth("billing_clerk"))
    assert approved.status_code == 200, approved.text
    assert Decimal(approved.json()["volume"]) == 300


async def test_zero_consumption_for_an_occupied_premise_goes_to_review(
    client, auth, open_account, meter
) -> None:
    occupied = await open_account(meters=[meter(initial="100")])
    vacant = await open_account(meters=[meter(initial="100")], status="suspended")
    assert (await post_reading(client, auth, occupied, 100, MONTHS[0])).json()["status"] == "pending_review"
    assert (await post_reading(client, auth, vacant, 100, MONTHS[0])).json()["status"] == "accepted"


async def test_a_resident_reports_with_a_photo_on_their_own_account_only(
    client, auth, open_account, meter
) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    other = await open_account(meters=[meter(initial="100")])
    resident = auth(accounts=[account_no], subject="resident-wang")

    missing = await post_reading(client, auth, account_no, 120, MONTHS[0], who=resident)
    assert (missing.status_code, missing.json()["code"]) == (422, "photo_ref_required")
    elsewhere = await post_reading(
        client, auth, other, 120, MONTHS[0], who=resident, photo_ref="oss://p/1.jpg"
    )
    assert (elsewhere.status_code, elsewhere.json()["code"]) == (404, "account_not_found")
    listed = await client.get(f"/v1/accounts/{other}/readings", headers=resident)
    assert (listed.status_code, listed.json()["code"]) == (404, "account_not_found")

    ok = await post_reading(client, auth, account_no, 120, MONTHS[0], who=resident, photo_ref="oss://p/2.jpg")
    assert ok.status_code == 201, ok.text
    body = ok.json()
    assert (body["source"], body["photo_ref"], body["entered_by"]) == (
        "self_reported",
        "oss://p/2.jpg",
        "resident-wang",
    )
    own = await client.get(f"/v1/accounts/{account_no}/readings", headers=resident)
    assert own.status_code == 200 and len(own.json()["items"]) == 2
    # residents never review
    queue = await client.get("/v1/readings/review-queue", headers=resident)
    assert queue.status_code == 403


async def test_a_bulk_batch_sent_twice_stores_each_reading_once(
    client, auth, issuer, open_account, meter
) -> None:
    meters = [meter(initial="100") for _ in range(3)]
    accounts = [await open_account(meters=[m]) for m in meters]
    prefix = uuid.uuid4().hex[:8]
    readings = [
        # by account and serial, by serial only, by account only
        {
            "external_id": f"{prefix}-1",
            "account_no": accounts[0],
            "meter_serial": meters[0].serial_no,
            "read_at": MONTHS[0].isoformat(),
            "value": "130",
        },
        {
            "external_id": f"{prefix}-2",
            "meter_serial": meters[1].serial_no,
            "read_at": MONTHS[0].isoformat(),
            "value": "140",
        },
        {
            "external_id": f"{prefix}-3",
            "account_no": accounts[2],
            "read_at": MONTHS[0].isoformat(),
            "value": "90",
        },
        {
            "external_id": f"{prefix}-4",
            "meter_serial": "NOPE-0000",
            "read_at": MONTHS[0].isoformat(),
            "value": "1",
        },
        {
            "external_id": f"{prefix}-5",
            "account_no": accounts[0],
            "read_at": MONTHS[1].isoformat(),
            "value": "100000",
        },
        {
            "external_id": f"{prefix}-1",
            "account_no": accounts[0],
            "read_at": MONTHS[1].isoformat(),
            "value": "150",
        },
    ]
    partner = {"Authorization": f"Bearer {issuer.partner('head-end-1', 'readings:write')}"}
    first = await client.post(
        "/v1/readings/batches", json={"batch_id": "B-1", "readings": readings}, headers=partner
    )
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["counts"] == {"accepted": 2, "flagged": 1, "rejected": 3, "duplicate": 0}
    results = body["items"]
    assert [r["result"] for r in results] == [
        "accepted",
        "accepted",
        "flagged",
        "rejected",
        "rejected",
        "rejected",
    ]
    assert results[2]["flags"] == ["value_decreased"]
    assert [r["code"] for r in results[3:]] == [
        "meter_not_found",
        "value_out_of_range",
        "external_id_repeated",
    ]

    second = await client.post(
        "/v1/readings/batches", json={"batch_id": "B-1", "readings": readings}, headers=partner
    )
    assert second.status_code == 200
    again = second.json()
    assert again["counts"] == {"accepted": 0, "flagged": 0, "rejected": 2, "duplicate": 4}
    assert [r["reading_id"] for r in again["items"][:3]] == [r["reading_id"] for r in results[:3]]
    for account_no in accounts:
        listed = (
            await client.get(f"/v1/accounts/{account_no}/readings", headers=auth("billing_clerk"))
        ).json()
        assert len(listed["items"]) == 2  # the installation reading and one batch reading
        assert listed["items"][0]["source"] == "remote_batch"

    # a billing clerk may upload too; a technician may not, nor a partner without the scope
    other_partner = {"Authorization": f"Bearer {issuer.partner('bank-1', 'payments:write')}"}
    for headers in (auth("technician"), other_partner):
        refused = await client.post("/v1/readings/batches", json={"readings": readings[:1]}, headers=headers)
        assert refused.status_code == 403


async def test_an_estimate_then_the_actual_reading_trues_it_up(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100", multiplier="2")])
    last = await steady_history(client, auth, account_no, months=5)  # 30 a month, 2026-01 .. 2026-05
    estimate = await client.post(
        f"/v1/accounts/{account_no}/readings/estimates",
        json={"read_at": MONTHS[5].isoformat()},
        headers=auth("billing_clerk"),
    )
    assert estimate.status_code == 201, estimate.text
    est = estimate.json()
    assert (est["source"], est["status"], est["kind"]) == ("estimated", "accepted", "estimate")
    assert est["estimate"]["method"] == "median_daily"
    estimated = Decimal(est["consumption"])
    assert Decimal(29) <= estimated <= Decimal(32)
    assert Decimal(est["volume"]) == estimated * 2
    not_after = await client.post(
        f"/v1/accounts/{account_no}/readings/estimates",
        json={"read_at": MONTHS[4].isoformat()},
        headers=auth("billing_clerk"),
    )
    assert (not_after.status_code, not_after.json()["code"]) == (409, "estimate_not_after_latest")

    # the actual reading a month after the estimate: 50 since the last actual one; true-up = 50 - estimated
    actual = await post_reading(client, auth, account_no, last + 50, MONTHS[6])
    assert actual.status_code == 201, actual.text
    body = actual.json()
    assert body["status"] == "accepted" and body["kind"] == "true_up"
    true_up = body["true_up"]
    assert Decimal(true_up["actual_consumption"]) == 50
    assert Decimal(true_up["estimated_consumption"]) == estimated
    assert Decimal(true_up["correction"]) == 50 - estimated
    assert Decimal(body["volume"]) == (50 - estimated) * 2
    assert true_up["direction"] == "debit"
    assert true_up["estimate_reading_ids"] == [est["id"]]
    assert "补收" in true_up["description_zh"]
    # billed on the estimate + the true-up = the actual volume
    assert Decimal(est["volume"]) + Decimal(body["volume"]) == 100


async def test_a_reading_older_than_an_estimate_goes_to_review(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    last = await steady_history(client, auth, account_no, months=5)
    estimate = await client.post(
        f"/v1/accounts/{account_no}/readings/estimates",
        json={"read_at": MONTHS[6].isoformat()},
        headers=auth("billing_clerk"),
    )
    assert estimate.status_code == 201
    late = (await post_reading(client, auth, account_no, last + 30, MONTHS[5])).json()
    assert late["status"] == "pending_review"
    assert "not_after_previous" in [f["code"] for f in late["flags"]]
    refused = await client.post(f"/v1/readings/{late['id']}/approve", headers=auth("billing_clerk"))
    assert (refused.status_code, refused.json()["code"]) == (409, "newer_reading_accepted")


async def test_estimates_are_refused_without_history(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    response = await client.post(
        f"/v1/accounts/{account_no}/readings/estimates", json={}, headers=auth("billing_clerk")
    )
    assert (response.status_code, response.json()["code"]) == (422, "not_enough_history")
    unknown = await client.post(
        "/v1/accounts/29999999999/readings/estimates", json={}, headers=auth("billing_clerk")
    )
    assert (unknown.status_code, unknown.json()["code"]) == (404, "account_not_found")


async def test_bad_input_answers_problem_documents(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    clerk = auth("billing_clerk")
    cases = [
        ({"read_at": "2026-01-01T09:00:00", "value": "1"}, 422, "validation_failed"),  # naive time
        ({"read_at": MONTHS[0].isoformat(), "value": 1.5}, 201, None),  # a JSON number is read as decimal
        ({"read_at": MONTHS[0].isoformat(), "value": "-1"}, 422, "validation_failed"),
        ({"read_at": MONTHS[0].isoformat(), "value": "1.2345"}, 422, "validation_failed"),
        ({"read_at": MONTHS[0].isoformat(), "value": "1", "colour": "red"}, 422, "validation_failed"),
        (
            {"read_at": MONTHS[1].isoformat(), "value": "1", "meter_serial": "NOPE-1234"},
            422,
            "meter_not_found",
        ),
    ]
    for body, status, code in cases:
        response = await client.post(f"/v1/accounts/{account_no}/readings", json=body, headers=clerk)
        assert response.status_code == status, (body, response.text)
        if code:
            assert response.headers["content-type"].startswith("application/problem+json")
            assert response.json()["code"] == code
    raw = await client.post(
        f"/v1/accounts/{account_no}/readings",
        content=b"{nope",
        headers=clerk | {"content-type": "application/json"},
    )
    assert (raw.status_code, raw.json()["code"]) == (400, "malformed_json")
    unknown = await post_reading(client, auth, "29999999998", 1, MONTHS[0])
    assert (unknown.status_code, unknown.json()["code"]) == (404, "account_not_found")
    bad_cursor = await client.get(
        f"/v1/accounts/{account_no}/readings", params={"cursor": "x!"}, headers=clerk
    )
    assert (bad_cursor.status_code, bad_cursor.json()["code"]) == (400, "invalid_cursor")
    missing = await client.post(f"/v1/readings/{uuid.uuid4()}/approve", headers=clerk)
    assert (missing.status_code, missing.json()["code"]) == (404, "reading_not_found")
    not_uuid = await client.post("/v1/readings/abc/approve", headers=clerk)
    assert (not_uuid.status_code, not_uuid.json()["code"]) == (422, "validation_failed")
    empty = await client.post("/v1/readings/batches", json={"readings": []}, headers=clerk)
    assert (empty.status_code, empty.json()["code"]) == (422, "validation_failed")
    unnamed = await client.post(
        "/v1/readings/batches",
        json={"readings": [{"external_id": "x", "read_at": MONTHS[0].isoformat(), "value": "1"}]},
        headers=clerk,
    )
    assert (unnamed.status_code, unnamed.json()["code"]) == (422, "validation_failed")
    for who in ("agent", "inspector", "analyst"):
        response = await post_reading(client, auth, account_no, 1, MONTHS[2], who=who)
        assert (response.status_code, response.json()["code"]) == (403, "forbidden")


async def test_idempotency_key_replays_a_manual_reading(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    key = str(uuid.uuid4())
    headers = auth("technician") | {"Idempotency-Key": key}
    body = {"read_at": MONTHS[0].isoformat(), "value": "120"}
    first = await client.post(f"/v1/accounts/{account_no}/readings", json=body, headers=headers)
    second = await client.post(f"/v1/accounts/{account_no}/readings", json=body, headers=headers)
    assert first.status_code == second.status_code == 201
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert first.json()["id"] == second.json()["id"]
    reused = await client.post(
        f"/v1/accounts/{account_no}/readings", json=body | {"value": "121"}, headers=headers
    )
    assert (reused.status_code, reused.json()["code"]) == (422, "idempotency_key_reused")
    listed = (await client.get(f"/v1/accounts/{account_no}/readings", headers=auth("agent"))).json()
    assert len(listed["items"]) == 2


async def test_the_reading_list_pages_with_a_cursor(client, auth, open_account, meter) -> None:
    account_no = await open_account(meters=[meter(initial="100")])
    await steady_history(client, auth, account_no, months=4)
    seen, cursor = [], None
    while True:
        params = {"limit": 2} | ({"cursor": cursor} if cursor else {})
        page = (
            await client.get(f"/v1/accounts/{account_no}/readings", params=params, headers=auth("agent"))
        ).json()
        seen += [r["read_at"] for r in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == 5
    assert seen == sorted(seen, reverse=True)
    assert datetime.fromisoformat(seen[-1]) == INSTALLED_AT
