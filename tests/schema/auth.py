"""Schemathesis hooks (SCHEMATHESIS_HOOKS=tests.schema.auth): each call carries the token of
the role its operation is meant for, so generated calls reach the API's logic rather than
stop at 401/403. A technician's token names the technician the order is offered or assigned
to; a customer's is scoped to the order in the path. Tokens are minted with the service's
signing secret (SCHEMA_AUTH_SECRET); the order is looked up at SCHEMA_API_URL."""

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import timedelta
from typing import Any

import schemathesis

from core.tokens import mint_token

TTL = timedelta(hours=1)
CUSTOMER_ROUTES = re.compile(
    r"/(quote/approve|quote/decline|acceptance|survey|warranty-claims|complaints|follow-up)$"
)
TECHNICIAN_ROUTES = re.compile(
    r"/(offer/accept|offer/decline|appointment|check-in|diagnosis|parts|parts/arrived|workshop"
    r"|workshop/return|hazard|service-record|complete)$"
)
SUPERVISOR_ROUTES = re.compile(r"/(hazard/clear|acknowledge|resolve)$")
AUDITOR_ROUTES = re.compile(r"/(events|history|replay)$")
# Registered by the test before the run: the technician of orders that have none, and the one
# generated assignments name, so those calls get past "no such technician".
REGISTERED_TECHNICIAN = "T-SCHEMA"


def role_for(method: str, path: str) -> str:
    if path.startswith("/v1/technicians") and method != "GET":
        return "admin"
    if method == "POST" and CUSTOMER_ROUTES.search(path):
        return "customer"
    for role, routes in (
        ("supervisor", SUPERVISOR_ROUTES),
        ("technician", TECHNICIAN_ROUTES),
        ("auditor", AUDITOR_ROUTES),
    ):
        if routes.search(path):
            return role
    return "staff"


def order_id_of(parameters: dict[str, Any]) -> str | None:
    """The order in the path, or the one a complaint belongs to (its id is `<order>-C<n>`)."""
    if order_id := parameters.get("order_id"):
        return str(order_id)
    if complaint_id := parameters.get("complaint_id"):
        return str(complaint_id).rsplit("-C", 1)[0]
    return None


def technician_on(order_id: str | None, secret: str) -> str:
    """The technician the order is offered or assigned to, as staff reads it."""
    if order_id is None:
        return REGISTERED_TECHNICIAN
    staff = mint_token(secret, subject="schema-staff", role="staff", ttl=TTL)
    path = f"/v1/orders/{urllib.parse.quote(order_id, safe='')}"
    request = urllib.request.Request(  # noqa: S310 - the service under test, on loopback
        f"{os.environ['SCHEMA_API_URL']}{path}",
        headers={"Authorization": f"Bearer {staff}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback
            order = json.loads(response.read())
    except (urllib.error.URLError, ValueError):
        return REGISTERED_TECHNICIAN
    offer = order.get("offer") or {}
    return str(offer.get("technician_id") or order.get("technician_id") or REGISTERED_TECHNICIAN)


@schemathesis.auth()
class TokenForTheOperation:
    def get(self, case: schemathesis.Case[Any], ctx: schemathesis.AuthContext) -> str:
        return os.environ["SCHEMA_AUTH_SECRET"]

    def set(self, case: schemathesis.Case[Any], secret: str, ctx: schemathesis.AuthContext) -> None:
        role = role_for(case.method, case.operation.path)
        parameters = dict(case.path_parameters or {})
        claims: dict[str, str] = {}
        if role == "customer":
            claims["order_id"] = order_id_of(parameters) or "RF000000-NONE00"
        elif role == "technician":
            claims["technician_id"] = technician_on(order_id_of(parameters), secret)
        token = mint_token(secret, subject=f"schema-{role}", role=role, ttl=TTL, **claims)
        case.headers["Authorization"] = f"Bearer {token}"
        if case.operation.path.endswith("/assign") and isinstance(case.body, dict):
            case.body = {**case.body, "technician_id": REGISTERED_TECHNICIAN}
