"""The payment providers' side of a load test, played by the Locust process: the provider simulator (the
stack's key bundle) signs each notification exactly as WeChat Pay, Alipay or the bank does, and this
module keeps the providers' books: every payment a provider confirmed, whether its notification was
acknowledged, and the ledger the audit compares with the platform's records.

Like a real provider, it notifies again until acknowledged: at the end of the test (Locust stops users in
the middle of what they do, a notification among them) every confirmed payment whose notification was
not acknowledged is notified again (a new signature and nonce, the same transaction id).
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from payment.adapters.providers.simulator import ProviderSimulator, SimCallback


@dataclass
class Confirmation:
    order_no: str
    provider: str
    amount_fen: int
    account_no: str
    txn_id: str = ""
    acknowledged: bool = False
    notifications: int = 0


class Providers:
    def __init__(self, keys_file: Path, *, renotify_share: float = 0.0) -> None:
        self.simulator = ProviderSimulator.from_keys(keys_file.read_text(encoding="utf-8"))
        self.renotify_share = renotify_share
        self.book: dict[str, Confirmation] = {}

    def confirm(self, provider: str, order: dict[str, Any]) -> Confirmation:
        """The payer paid ``order`` (the payment service's answer) at ``provider``: the provider's books
        record it, whatever happens to the notification."""
        amount = order["amount"]["amount_fen"]
        self.simulator.register_order(provider, order["order_no"], amount)
        entry = Confirmation(order["order_no"], provider, amount, order["account_no"])
        self.book[entry.order_no] = entry
        return entry

    def notification(self, entry: Confirmation) -> SimCallback:
        """A signed success notification: the first one picks the transaction id, later ones repeat it."""
        sim = self.simulator
        known = sim.orders.get((entry.provider, entry.order_no))
        txn_id = entry.txn_id or None
        paid_at = known.paid_at if known is not None and entry.txn_id else None
        cb = sim.callback(entry.provider, entry.order_no, entry.amount_fen, txn_id, paid_at)
        entry.txn_id = sim.orders[(entry.provider, entry.order_no)].txn_id or ""
        entry.notifications += 1
        return cb

    def notify(self, session: Any, entry: Confirmation, *, label: str = "") -> bool:
        """Post a notification to the gateway's callback path with ``session`` (a Locust ``FastHttpSession``
        from the providers' network); True when the platform acknowledged it (HTTP 200)."""
        cb = self.notification(entry)
        name = cb.path if not cb.path.startswith("/callbacks/bank/") else "/callbacks/bank/[code]"
        with session.post(
            cb.path, data=cb.body, headers=cb.headers, name=name + label, catch_response=True
        ) as response:
            if response.status_code == 200:
                entry.acknowledged = True
                response.success()
            else:
                response.failure(f"{response.status_code} {(response.text or '')[:200]}")
        return entry.acknowledged

    def maybe_notify_again(self, session: Any, entry: Confirmation) -> None:
        """Providers notify more than once (a lost acknowledgement, a retry schedule): a share of payments
        gets a second, freshly signed notification, which must change nothing."""
        if random.random() < self.renotify_share:
            self.notify(session, entry, label=" (provider notifies again)")

    def unacknowledged(self) -> list[Confirmation]:
        return [e for e in self.book.values() if not e.acknowledged]

    def write_ledger(self, path: Path) -> int:
        """JSON lines, one per confirmed payment (what ``loadtests.audit.read_ledger`` reads)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("w", encoding="utf-8") as f:
            for e in self.book.values():
                f.write(json.dumps(e.__dict__) + "\n")
        return len(self.book)
