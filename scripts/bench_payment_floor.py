"""The floor of a payment on this machine: the baseline `make bench-payment` measures in the same run.

A payment here is the least any implementation must do over HTTP with this stack's framework and the
providers' own crypto, and nothing else:
  - create: FastAPI parses the JSON body (pydantic), the shared `TokenVerifier` checks the bearer token
    (the gateway's, cached per token as in every service), one INSERT of the order (asyncpg, autocommit),
    and the provider adapter builds its pay request (Alipay's is RSA-signed) for the answer;
  - callback: the provider adapter verifies the signature over the raw body (and decrypts WeChat's
    resource), one UPDATE of the order, and the provider's acknowledgement.
No idempotency record, no order lock, no callback record, no nonce store, no outbox, no Kafka, no consumer,
no settlement, no middleware (metrics, request ids, body limits): what the real service does beyond this
floor is what the benchmark's ratio to it prices. Run by `scripts/bench_payment.py` as its own uvicorn
process (as many workers as the stack's payment API) against a throwaway database
(`payment_bench_floor`). Never deployed; not a service.
"""

from __future__ import annotations

import os
import secrets
from contextlib import asynccontextmanager
from typing import Annotated

import asyncpg
from fastapi import FastAPI, Header, Path, Request
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

from payment.adapters.channels import Channels, configured_adapters
from payment.settings import Settings
from utilis_shared.auth import TokenVerifier
from utilis_shared.timeutil import utcnow

DATABASE = "payment_bench_floor"
TABLE = (
    "CREATE TABLE IF NOT EXISTS orders (order_no varchar(32) PRIMARY KEY, account_no varchar(20) NOT NULL, "
    "amount_fen bigint NOT NULL, provider varchar(20) NOT NULL, status varchar(12) NOT NULL, "
    "provider_txn_id varchar(64), created_at timestamptz NOT NULL)"
)


class OrderCreate(BaseModel):
    account_no: str
    purpose: str
    amount_fen: int
    channel: str


@asynccontextmanager
async def lifespan(app: FastAPI):
    settings = Settings()
    app.state.verifier = TokenVerifier.from_settings(settings)
    app.state.channels = Channels(configured_adapters(settings), notify_base_url=settings.callback_base_url)
    pool = await asyncpg.create_pool(os.environ["FLOOR_DSN"], min_size=4, max_size=16)
    await pool.execute(TABLE)
    app.state.pool = pool
    try:
        yield
    finally:
        await pool.close()


app = FastAPI(lifespan=lifespan)


@app.post("/v1/payment-orders", status_code=201)
async def create_order(request: Request, body: OrderCreate, authorization: Annotated[str, Header()]):
    state = request.app.state
    await state.verifier.verify(authorization.removeprefix("Bearer "))
    order_no, now = f"F{secrets.token_hex(8)}", utcnow()
    await state.pool.execute(
        "INSERT INTO orders (order_no, account_no, amount_fen, provider, status, created_at) "
        "VALUES ($1, $2, $3, $4, 'pending', $5)",
        order_no,
        body.account_no,
        body.amount_fen,
        body.channel,
        now,
    )
    pay_request = state.channels.adapter(body.channel).build_order_request(
        order_no=order_no,
        amount_fen=body.amount_fen,
        description=f"户号 {body.account_no} 缴费",
        notify_url=state.channels.notify_url(body.channel),
        now=now,
    )
    answer = {"order_no": order_no, "channel": body.channel, "amount": {"amount_fen": body.amount_fen}}
    return JSONResponse({**answer, "pay_request": pay_request}, status_code=201)


async def callback(request: Request, provider: str) -> Response:
    state = request.app.state
    adapter = state.channels.adapter(provider)
    notice = adapter.verify_callback(headers=request.headers, body=await request.body(), now=utcnow())
    await state.pool.execute(
        "UPDATE orders SET status = 'succeeded', provider_txn_id = $2 "
        "WHERE order_no = $1 AND status = 'pending'",
        notice.order_no,
        notice.provider_txn_id,
    )
    status, content_type, body = adapter.ack(True, "")
    return Response(body, status_code=status, media_type=content_type)


@app.post("/callbacks/{provider}")
async def provider_callback(request: Request, provider: Annotated[str, Path(pattern=r"^(wechat|alipay)$")]):
    return await callback(request, provider)


@app.post("/callbacks/bank/{bank}")
async def bank_callback(request: Request, bank: Annotated[str, Path(pattern=r"^[a-z0-9]{2,20}$")]):
    return await callback(request, f"bank:{bank}")
