"""Who may call what through the gateway: one declarative table, deny by default.

Every proxied route is a row: the upstream service, the HTTP method, the path template as the service
declares it (``/accounts/{account_no}``) and who is admitted — staff by role (admin passes every role
check), partners by scope, residents (their object-level check is the service's: a resident's token
carries the accounts they may act on), or nobody with a token at all (provider callbacks, which the
payment service authenticates by signature, behind an IP allow-list).

A request that matches no row is refused before it reaches any service (403 ``no_policy``), so a route
added to a service stays unreachable from outside until someone writes its row here. The services check
the same rules again from the token's claims: the gateway is the first gate, not the only one.

The gateway answers from this table only the coarse question (may this kind of caller use this route?);
it never widens what a service allows.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from utilis_shared.auth import Principal, Role

RESIDENT_SELF_SERVICE = "residents"


@dataclass(frozen=True)
class Access:
    """Who a route admits. ``public`` routes take no token (callbacks); everything else needs one."""

    roles: frozenset[str] = frozenset()
    scopes: frozenset[str] = frozenset()
    residents: bool = False
    public: bool = False

    def __or__(self, other: Access) -> Access:
        return Access(
            roles=self.roles | other.roles,
            scopes=self.scopes | other.scopes,
            residents=self.residents or other.residents,
            public=self.public or other.public,
        )

    def admits(self, principal: Principal) -> bool:
        if principal.is_staff:
            return bool(self.roles) and principal.has_role(*self.roles)
        if principal.kind == "partner":
            return bool(self.scopes & principal.scopes)
        if principal.is_resident:
            return self.residents
        return False

    def describe(self) -> str:
        if self.public:
            return "public (provider signature checked by the service; IP allow-list)"
        parts = []
        if self.roles:
            parts.append("staff: " + ", ".join(sorted(self.roles)) + " (admin passes)")
        if self.scopes:
            parts.append("partners: " + " | ".join(sorted(self.scopes)))
        if self.residents:
            parts.append("residents: own accounts only")
        return "; ".join(parts)


def staff(*roles: str) -> Access:
    return Access(roles=frozenset(roles))


def partners(*scopes: str) -> Access:
    return Access(scopes=frozenset(scopes))


RESIDENTS = Access(residents=True)
PUBLIC = Access(public=True)


@dataclass(frozen=True)
class RoutePolicy:
    service: str
    method: str
    path: str  # the service's own path template
    access: Access
    # Rate-limit family (settings.rate_limits): "default", or "callback" for the providers' callbacks.
    limit: str = "default"
    pattern: re.Pattern[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "pattern", _compile(self.path))

    @property
    def template(self) -> str:
        """How metrics and logs name the route (bounded: never the concrete path)."""
        prefix = "/callbacks" if self.limit == "callback" else f"/api/{self.service}"
        path = self.path.removeprefix("/callbacks") if self.limit == "callback" else self.path
        return f"{prefix}{path}"


_PARAM = re.compile(r"\{([a-z_][a-z0-9_]*)\}")


def _compile(template: str) -> re.Pattern[str]:
    out, last = [], 0
    for m in _PARAM.finditer(template):
        out.append(re.escape(template[last : m.start()]))
        out.append(r"[^/]+")
        last = m.end()
    out.append(re.escape(template[last:]))
    return re.compile("^" + "".join(out) + "$")


class PolicyTable:
    def __init__(self, rows: Iterable[RoutePolicy]) -> None:
        self.rows = tuple(rows)
        seen: set[tuple[str, str, str]] = set()
        for row in self.rows:
            key = (row.service, row.method, row.path)
            if key in seen:
                raise ValueError(f"duplicate policy row {key}")
            seen.add(key)
        # Literal segments win over parameters (``/accounts/search`` before ``/accounts/{account_no}``).
        self._by_service: dict[str, list[RoutePolicy]] = {}
        for row in sorted(self.rows, key=lambda r: -r.path.count("/") * 100 + r.path.count("{")):
            self._by_service.setdefault(row.service, []).append(row)

    def match(self, service: str, method: str, path: str) -> RoutePolicy | None:
        method = "GET" if method == "HEAD" else method
        for row in self._by_service.get(service, ()):
            if row.method == method and row.pattern.match(path):
                return row
        return None

    def services(self) -> set[str]:
        return set(self._by_service)


# The roles of the customer service's route families (services/customer/src/customer/api/deps.py).
FRONT_OFFICE = staff(Role.AGENT, Role.BILLING_CLERK)
READERS = staff(Role.AGENT, Role.BILLING_CLERK, Role.DISPATCHER)
METER_STAFF = staff(Role.AGENT, Role.BILLING_CLERK, Role.TECHNICIAN)
ADMIN = staff(Role.ADMIN)
BANKS = partners("accounts:read")  # banks confirm an account (masked holder) before collecting
OWN_ACCOUNT = READERS | RESIDENTS  # residents pass here; the service lets them see only their own
ACCOUNT_LOOKUP = OWN_ACCOUNT | BANKS

# The metering-and-billing service's families (services/metering-and-billing/src/billing/api/deps.py).
TARIFF_READERS = staff(Role.AGENT, Role.BILLING_CLERK, Role.ANALYST)
CLERKS = staff(Role.BILLING_CLERK)
BILL_LOOKUP = staff(Role.AGENT, Role.BILLING_CLERK, Role.ANALYST) | RESIDENTS | partners("bills:read")
SUPERVISORS = staff(Role.BILLING_SUPERVISOR)
READING_ENTRY = staff(Role.TECHNICIAN, Role.BILLING_CLERK) | RESIDENTS
READING_READERS = staff(Role.BILLING_CLERK, Role.AGENT, Role.TECHNICIAN, Role.ANALYST) | RESIDENTS
READING_UPLOAD = CLERKS | partners("readings:write")
TELEMETRY_UPLOAD = staff(Role.TECHNICIAN) | partners("telemetry:write")
TELEMETRY_READERS = staff(Role.AGENT, Role.TECHNICIAN, Role.BILLING_CLERK) | RESIDENTS
RUN_READERS = staff(Role.BILLING_CLERK, Role.ANALYST)
# The payment service's families (services/payment/src/payment/api/deps.py).
PAYERS = staff(Role.AGENT, Role.BILLING_CLERK) | RESIDENTS | partners("payments:write")
RECONCILERS = staff(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR)
RECON_READERS = staff(Role.BILLING_CLERK, Role.BILLING_SUPERVISOR, Role.ANALYST)
PAYMENT_READERS = staff(Role.AGENT, Role.BILLING_CLERK, Role.ANALYST) | RESIDENTS | partners("payments:read")
SITE_CONFIG = staff(Role.TECHNICIAN, Role.BILLING_CLERK)
QUOTE = TARIFF_READERS | RESIDENTS

# fmt: off
POLICY = PolicyTable([
    # ---- customer ------------------------------------------------------------------------------------
    RoutePolicy("customer", "POST",  "/v1/customers",                                         FRONT_OFFICE),
    RoutePolicy("customer", "GET",   "/v1/customers",                                         READERS),
    RoutePolicy("customer", "GET",   "/v1/customers/{customer_id}",                           READERS),
    RoutePolicy("customer", "PATCH", "/v1/customers/{customer_id}",                           FRONT_OFFICE),
    RoutePolicy("customer", "GET",   "/v1/customers/{customer_id}/view",                      READERS),
    RoutePolicy("customer", "POST",  "/v1/customers/{customer_id}/merges",                    ADMIN),
    RoutePolicy("customer", "GET",   "/v1/customers/{customer_id}/audit",                     ADMIN),
    RoutePolicy("customer", "POST",  "/v1/accounts",                                          FRONT_OFFICE),
    RoutePolicy("customer", "GET",   "/v1/accounts/{account_no}",                             ACCOUNT_LOOKUP),
    RoutePolicy("customer", "GET",   "/v1/accounts/{account_no}/view",                        OWN_ACCOUNT),
    RoutePolicy("customer", "PATCH", "/v1/accounts/{account_no}",                             FRONT_OFFICE),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/transfers",                   FRONT_OFFICE),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/suspension",                  FRONT_OFFICE),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/resumption",                  FRONT_OFFICE),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/closure",                     FRONT_OFFICE),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/meters",                      METER_STAFF),
    RoutePolicy("customer", "POST",  "/v1/accounts/{account_no}/meters/{serial_no}/replacement", METER_STAFF),
    RoutePolicy("customer", "PATCH", "/v1/premises/{premise_id}",                             FRONT_OFFICE),
    RoutePolicy("customer", "GET",   "/v1/duplicates",                                        ADMIN),
    RoutePolicy("customer", "POST",  "/v1/duplicates/{flag_id}/dismissal",                    ADMIN),
    # ---- metering-and-billing (/api/billing) -----------------------------------------------------------
    RoutePolicy("billing",  "GET",   "/v1/tariff-plans",                                      TARIFF_READERS),
    RoutePolicy("billing",  "GET",   "/v1/tariff-plans/{code}/versions",                      TARIFF_READERS),
    RoutePolicy("billing",  "POST",  "/v1/tariff-plans",                                      CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/tariff-plans/{code}/quote",                        QUOTE),
    RoutePolicy("billing",  "POST",  "/v1/billing-runs",                                      CLERKS),
    RoutePolicy("billing",  "GET",   "/v1/billing-runs/{run_id}",                             RUN_READERS),
    RoutePolicy("billing",  "POST",  "/v1/bills/{bill_no}/credit-notes",                      CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/bills/{bill_no}/debit-notes",                       CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/bills/{bill_no}/late-fee-waivers",                  SUPERVISORS),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/balance",                     BILL_LOOKUP),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/bills",                       BILL_LOOKUP),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/bills/{bill_no}",             BILL_LOOKUP),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/usage-history",               BILL_LOOKUP),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/reminders",                   FRONT_OFFICE),
    RoutePolicy("billing",  "POST",  "/v1/accounts/{account_no}/readings",                    READING_ENTRY),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/readings", READING_READERS),
    RoutePolicy("billing",  "POST",  "/v1/accounts/{account_no}/readings/estimates",          CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/readings/batches",                                  READING_UPLOAD),
    RoutePolicy("billing",  "GET",   "/v1/readings/review-queue",                             CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/readings/{reading_id}/approve",                     CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/readings/{reading_id}/reject",                      CLERKS),
    RoutePolicy("billing",  "POST",  "/v1/telemetry/samples", TELEMETRY_UPLOAD),
    RoutePolicy("billing",  "PUT",   "/v1/telemetry/sites/{site_kind}/{site_id}",             SITE_CONFIG),
    RoutePolicy("billing",  "GET",   "/v1/accounts/{account_no}/heating-telemetry", TELEMETRY_READERS),
    # ---- payment (/api/payment) -----------------------------------------------------------------------
    RoutePolicy("payment",  "POST",  "/v1/payment-orders",                                    PAYERS),
    RoutePolicy("payment",  "GET",   "/v1/payment-orders/{order_no}", PAYMENT_READERS),
    RoutePolicy("payment",  "POST",  "/v1/payment-orders/{order_no}/cancellation",            PAYERS),
    RoutePolicy("payment",  "POST",  "/v1/payment-orders/{order_no}/counter-receipt",         CLERKS),
    RoutePolicy("payment",  "POST",  "/v1/payment-orders/{order_no}/refunds",                 FRONT_OFFICE),
    RoutePolicy("payment",  "POST",  "/v1/refunds/{refund_no}/decision",                      SUPERVISORS),
    RoutePolicy("payment",  "POST",  "/v1/payment-orders/{order_no}/invoice-requests",        PAYERS),
    RoutePolicy("payment",  "GET",   "/v1/refund-cases",                                      RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/refund-cases/{case_id}",                            RECON_READERS),
    RoutePolicy("payment",  "POST",  "/v1/refund-cases/{case_id}/resolution",                 RECONCILERS),
    RoutePolicy("payment",  "POST",  "/v1/reconciliations",                                   RECONCILERS),
    RoutePolicy("payment",  "GET",   "/v1/reconciliations",                                   RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/reconciliations/{run_id}",                          RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/reconciliation-totals",                             RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/reconciliation-cases",                              RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/reconciliation-cases/{case_id}",                    RECON_READERS),
    RoutePolicy("payment",  "POST",  "/v1/reconciliation-cases/{case_id}/resolution",         RECONCILERS),
    RoutePolicy("payment",  "GET",   "/v1/counter-shifts/{shift_id}/totals",                  RECONCILERS),
    RoutePolicy("payment",  "POST",  "/v1/counter-shifts/{shift_id}/hand-over",               CLERKS),
    RoutePolicy("payment",  "GET",   "/v1/counter-totals",                                    SUPERVISORS),
    RoutePolicy("payment",  "POST",  "/v1/accounts/{account_no}/withholding-mandates",        FRONT_OFFICE),
    RoutePolicy("payment", "GET", "/v1/accounts/{account_no}/withholding-mandates", FRONT_OFFICE | RESIDENTS),
    RoutePolicy("payment",  "POST",  "/v1/withholding-mandates/{mandate_id}/revocation",      FRONT_OFFICE),
    RoutePolicy("payment",  "POST",  "/v1/withholding-batches",                               RECONCILERS),
    RoutePolicy("payment",  "GET",   "/v1/withholding-batches/{batch_no}",                    RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/withholding-batches/{batch_no}/items",              RECON_READERS),
    RoutePolicy("payment",  "GET",   "/v1/withholding-batches/{batch_no}/request-file",       RECONCILERS),
    RoutePolicy("payment",  "POST",  "/v1/withholding-batches/{batch_no}/result-file",        RECONCILERS),
    # ---- payment: providers' and banks' asynchronous notifications -----------------------------------
    RoutePolicy("payment",  "POST",  "/callbacks/{provider}",                 PUBLIC, limit="callback"),
    RoutePolicy("payment",  "POST",  "/callbacks/{provider}/{kind}",          PUBLIC, limit="callback"),
])
# fmt: on
