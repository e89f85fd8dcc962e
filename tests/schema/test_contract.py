"""The API against its own OpenAPI document, with schemathesis, as an integrating client meets
it: README command 1 runs the whole service (dev server, worker, API), then

- one run per role with that role's token, every phase (the schema's examples, coverage of
  its constraints, fuzzing, and stateful sequences that follow the OpenAPI links from a
  booking to the order's actions, from a registration to the technician's routes, from a
  complaint to its actions): no server error, every answer's status code documented, its
  content type and body as the schema says;
- one run whose calls each carry the token of the role their operation is meant for
  (tests/schema/auth.py), with a booked order, a filed complaint and a registered technician
  in the paths: every operation is reached past 404 and past 401/403 (schemathesis's
  missing_test_data and missing_auth warnings fail the run).

Generation is deterministic, so a failure comes back the same on the next run.
"""

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.factories import create_booking_json, create_technician_json
from tests.service import ROOT, Service

ROLES = ("staff", "technician", "customer", "supervisor", "auditor", "admin")
CHECKS = (
    "not_a_server_error,status_code_conformance,content_type_conformance,"
    "response_schema_conformance"
)
SCHEMATHESIS = [
    str(ROOT / ".venv" / "bin" / "schemathesis"),
    "run",
    "--checks",
    CHECKS,
    "--max-examples",
    "5",
    "--generation-deterministic",
    "--request-timeout",
    "30",
]
RUN_SECONDS = 300


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    service = Service(tmp_path_factory.mktemp("contract"))
    service.up()
    yield service
    service.ctrl_c()


@pytest.fixture(scope="module")
def known(service: Service) -> dict[str, str]:
    """What the paths of the reaching run name: a registered technician (skilled in every
    category), a booked order and a complaint filed on it."""
    technician = create_technician_json(
        id="T-SCHEMA",
        skills=["refrigerator", "washing_machine", "gas_stove", "air_conditioner"],
    )
    status, _ = service.call("POST", "/v1/technicians", "admin", technician)
    assert status == 201
    status, booked = service.call("POST", "/v1/orders", "staff", create_booking_json())
    assert status == 201
    complaint = {"category": "attitude", "description": "rude on the phone", "concerns_work": False}
    status, filed = service.call(
        "POST", f"/v1/orders/{booked['order_id']}/complaints", "staff", complaint
    )
    assert status == 201
    return {
        "order_id": booked["order_id"],
        "complaint_id": filed["complaint_id"],
        "technician_id": "T-SCHEMA",
    }


def schemathesis(
    service: Service, *options: str, config: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """One schemathesis run against the service's schema; `config` is a schemathesis.toml.
    It runs in the service's data directory, where it keeps its cache, not in the sources."""
    program, *arguments = SCHEMATHESIS
    configured = ["--config-file", str(config)] if config else []
    return subprocess.run(  # noqa: S603 - the project's own schemathesis
        [program, *configured, *arguments, *options, f"{service.url}/openapi.json"],
        cwd=service.data_dir,
        env=service.env | (env or {}),
        capture_output=True,
        text=True,
        timeout=RUN_SECONDS,
        check=False,
    )


def summary(run: subprocess.CompletedProcess[str]) -> str:
    """Schemathesis's report of what failed, for the assertion message."""
    failures = run.stdout.find("FAILURES")
    return run.stdout[failures if failures >= 0 else 0 :][-6000:] + run.stderr[-2000:]


@pytest.mark.parametrize("role", ROLES)
def test_every_answer_matches_the_schema_with_each_roles_token(service: Service, role: str) -> None:
    run = schemathesis(service, "--header", f"Authorization: Bearer {service.token(role)}")
    assert run.returncode == 0, summary(run)


def test_every_operation_is_reached_past_404_and_403(
    service: Service, known: dict[str, str], tmp_path: Path
) -> None:
    config = tmp_path / "schemathesis.toml"
    parameters = "\n".join(f"{name} = {json.dumps(value)}" for name, value in known.items())
    warnings = '[warnings]\nfail-on = ["missing_test_data", "missing_auth"]\n'
    config.write_text(f"{warnings}\n[parameters]\n{parameters}\n")
    hooks = {
        "SCHEMATHESIS_HOOKS": "tests.schema.auth",
        "PYTHONPATH": str(ROOT),
        "SCHEMA_AUTH_SECRET": (service.data_dir / "auth-secret").read_text().strip(),
        "SCHEMA_API_URL": service.url,
    }
    run = schemathesis(service, config=config, env=hooks)
    assert run.returncode == 0, summary(run)
