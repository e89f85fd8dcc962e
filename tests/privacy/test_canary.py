"""Customers' personal data never reaches a file in clear: canary test of README command 1.

The whole service runs as a user runs it (tests/service.py: dev server, worker, API on ports and
a data directory of their own). Orders are booked with canaries, made-up personal data found
nowhere else (name, phone, email, address), and taken through the lifecycle over HTTP: dispatch,
the visit, acceptance, a complaint (resolved and closed), a warranty claim whose own order is
repaired and accepted, a cancellation, and one order left waiting on its offer. Once the worker's
writes have landed and the closed workflows are in the history archive, the service is stopped
and every byte it left in its data directory (the engine's database and its WAL, the records
store, the service's log) is searched for the canaries, in clear and inside every base64 run,
decoded (tests/privacy/leaks.py): the payloads in the archive's histories included.

The search is shown to work: it finds the canaries in the answer staff get, in a planted base64
blob, in the CLI's decoded output; and it finds, in the same files, the technician's id, which
the engine keeps in clear (a search attribute) and the archive in base64.

The CLI test reads an order's history with `temporal workflow show --output json` through the
API's codec endpoint, as an operator does: a supervisor's token shows the customer in clear,
an auditor's shows "[redacted]", and without the codec the payloads stay encrypted. It runs
first, while the service is up, so the canary test also searches what the API logged meanwhile.
"""

import asyncio
import base64
import json
import secrets
import sqlite3
from collections.abc import AsyncIterator, Iterator
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from core.personal import sealed_key_id
from core.tokens import mint_token
from tests.api.drive import DIAGNOSIS, SERVICE_RECORD, window
from tests.factories import create_booking_json, create_technician_json
from tests.privacy.leaks import (
    Hit,
    copy_database,
    files_under,
    find,
    find_in_database,
    find_in_files,
)
from tests.service import ROOT, Service
from tests.waiting import eventually

Json = dict[str, Any]
Headers = dict[str, str]

# Air conditioners' post-repair warranty window lasts seconds, so the repaired order closes (and
# is archived) while the test waits; every other clock keeps its default.
POLICY = """
[warranty.post_repair_by_category]
air_conditioner = "10s"
"""
CATEGORY = "air_conditioner"
CLOSE_SECONDS = 90.0
ARCHIVE_SECONDS = 60.0
CLI_SECONDS = 60.0
TEMPORAL = ROOT / ".venv" / "bin" / "temporal"
REDACTED = "[redacted]"
ENCRYPTED = "binary/encrypted"
PERSONAL_FIELDS = ("name", "phone", "email", "address")


@dataclass(frozen=True)
class Canary:
    """One customer's made-up personal data, unique to this run."""

    tag: str
    name: str
    phone: str
    email: str
    address: str

    @classmethod
    def new(cls) -> "Canary":
        tag = secrets.token_hex(6)
        digits = f"{secrets.randbelow(10**4):04d} {secrets.randbelow(10**4):04d}"
        return cls(
            tag=tag,
            name=f"Canary Zqx{tag}",
            phone=f"+86 139 {digits}",
            email=f"canary.{tag}@example.com",
            address=f"{tag} Canary Lane",
        )

    def fields(self) -> dict[str, str]:
        return {field: getattr(self, field) for field in PERSONAL_FIELDS}

    def needles(self, label: str) -> dict[str, str]:
        """What must never be found: each field as typed, the phone's digits run together, and
        the random tag alone (which catches a field cut, re-cased or half-quoted)."""
        national = self.phone.removeprefix("+86").replace(" ", "")
        return {f"{label} {field}": value for field, value in self.fields().items()} | {
            f"{label} phone digits": national,
            f"{label} tag": self.tag,
        }


@dataclass(frozen=True)
class Run:
    """What the drive left behind: the orders, each with the canary it was booked with."""

    canaries: dict[str, Canary]  # label -> canary
    orders: dict[str, str]  # order id -> its canary's label
    repaired: str  # the order taken through the whole lifecycle (closed)
    complaint: str
    claim: str  # its warranty claim's order (closed)
    cancelled: str
    waiting: str  # still waiting for its technician's answer
    technician_id: str

    def needles(self) -> dict[str, str]:
        return {k: v for label, c in self.canaries.items() for k, v in c.needles(label).items()}


# ---- the service -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    data_dir = tmp_path_factory.mktemp("privacy")
    policy = data_dir / "policy.toml"
    policy.write_text(POLICY)
    service = Service(data_dir)
    service.env["REPAIRFLOW_POLICY_FILE"] = str(policy)
    # The worker archives closed histories every second, not every minute.
    service.env["REPAIRFLOW_ARCHIVE_INTERVAL_SECONDS"] = "1"
    service.up()
    yield service
    service.stop()


def running(service: Service) -> bool:
    return service.process is not None and service.process.poll() is None


class Api:
    """The service's HTTP API with the token of each party: the development tokens command 1
    printed, and technicians' tokens signed with the secret it keeps in its data directory."""

    def __init__(self, http: httpx.AsyncClient, service: Service) -> None:
        self.http = http
        self.service = service
        self.secret = (service.data_dir / "auth-secret").read_text().strip()

    def by(self, role: str) -> Headers:
        return {"Authorization": f"Bearer {self.service.token(role)}"}

    def technician(self, technician_id: str) -> Headers:
        token = mint_token(
            self.secret,
            subject=f"privacy-{technician_id}",
            role="technician",
            ttl=timedelta(hours=1),
            technician_id=technician_id,
        )
        return {"Authorization": f"Bearer {token}"}

    async def post(self, path: str, body: Json | None, headers: Headers, status: int = 200) -> Json:
        response = await self.http.post(path, json=body, headers=headers)
        assert response.status_code == status, f"POST {path}: {response.text}"
        answer: Json = response.json()
        return answer

    async def order(self, order_id: str, role: str = "staff") -> httpx.Response:
        return await self.http.get(f"/v1/orders/{order_id}", headers=self.by(role))

    async def read(self, order_id: str) -> Json:
        response = await self.order(order_id)
        assert response.status_code == 200, response.text
        body: Json = response.json()
        return body

    async def book(self, canary: Canary) -> Json:
        purchased = datetime.now(UTC).date() - timedelta(days=100)  # in warranty: no quote
        booking = create_booking_json(
            customer=canary.fields() | {"region": "pudong"},
            appliance={
                "category": CATEGORY,
                "purchase_date": purchased.isoformat(),
                "proof_of_purchase": True,
            },
        )
        return await self.post("/v1/orders", booking, self.by("staff"), status=201)

    async def offered(self, order_id: str, technician_id: str) -> None:
        """Dispatch offered the job to the technician (the only one registered)."""
        order = await eventually(
            lambda: self.read(order_id),
            lambda order: bool(order["offer"] or order["escalations"]),
        )
        assert (order["offer"] or {}).get("technician_id") == technician_id, order

    async def repair(self, order_id: str, technician_id: str, accepting: Headers) -> Json:
        """From the offer to the customer's acceptance: the visit of an in-warranty order."""
        technician = self.technician(technician_id)
        steps: list[tuple[str, Headers, Json | None]] = [
            ("offer/accept", technician, None),
            ("appointment", technician, window()),
            ("check-in", technician, None),
            ("diagnosis", technician, DIAGNOSIS),
            ("service-record", technician, SERVICE_RECORD),
            ("complete", technician, None),
            ("acceptance", accepting, {"accepted": True, "signature": "signed on the tablet"}),
        ]
        answer: Json = {}
        for action, headers, body in steps:
            answer = await self.post(f"/v1/orders/{order_id}/{action}", body, headers)
        return answer

    async def written(self, order_id: str) -> None:
        """The worker's records and messages for the order have all been written."""
        await eventually(
            lambda: self.read(order_id),
            lambda order: (
                order["pending_writes"]["records"] == 0
                and order["pending_writes"]["notifications"] == 0
            ),
            explain=lambda order: f"{order_id}: pending {order['pending_writes']}",
        )

    async def stage_is(self, order_id: str, stage: str) -> None:
        await eventually(
            lambda: self.read(order_id),
            lambda order: order["stage"] == stage,
            within=CLOSE_SECONDS,
            explain=lambda order: f"{order_id} is {order['stage']}, not {stage}",
        )


@pytest.fixture(scope="module")
async def api(service: Service) -> AsyncIterator[Api]:
    async with httpx.AsyncClient(base_url=service.url, timeout=30) as http:
        yield Api(http, service)


def archived(service: Service) -> set[str]:
    """The workflows whose histories are in the history archive (records store)."""
    database = service.data_dir / "records.db"
    with closing(sqlite3.connect(f"file:{database}?mode=ro", uri=True)) as connection:
        return {row[0] for row in connection.execute("SELECT workflow_id FROM history_archive")}


@pytest.fixture(scope="module")
async def run(service: Service, api: Api) -> Run:
    """Orders booked with canaries and driven through the API; returned once the worker's writes
    have landed and the closed workflows are archived."""
    canaries = {label: Canary.new() for label in ("A", "B", "C")}
    technician_id = f"T-PROBE-{secrets.token_hex(5).upper()}"
    technician = create_technician_json(id=technician_id, skills=[CATEGORY, "refrigerator"])
    await api.post("/v1/technicians", technician, api.by("admin"), status=201)

    # A: the whole lifecycle, a complaint and a warranty claim.
    booked = await api.book(canaries["A"])
    repaired = str(booked["order_id"])
    customer = {"Authorization": f"Bearer {booked['customer_token']}"}
    await api.offered(repaired, technician_id)
    accepted = await api.repair(repaired, technician_id, customer)
    assert accepted["stage"] == "in_warranty", accepted
    complaint_body = {"category": "attitude", "description": "came late", "concerns_work": False}
    filed = await api.post(
        f"/v1/orders/{repaired}/complaints", complaint_body, api.by("staff"), status=201
    )
    complaint = str(filed["complaint_id"])
    for action, body in (
        ("acknowledge", None),
        ("resolve", {"resolution": "apologised for the delay"}),
        ("follow-up", {"satisfied": True}),
    ):
        answer = await api.post(f"/v1/complaints/{complaint}/{action}", body, api.by("staff"))
    assert answer["state"] == "closed", answer
    claimed = await api.post(
        f"/v1/orders/{repaired}/warranty-claims",
        {"description": "not cooling again"},
        api.by("staff"),
        status=201,
    )
    claim = str(claimed["claim_order_id"])
    await api.offered(claim, technician_id)
    await api.repair(claim, technician_id, api.by("staff"))

    # B: cancelled once the visit is agreed (cancelled while its offer is open, the workflow
    # would run on until the offer expires, 15 minutes: too late for the archive here).
    # C: left waiting for the technician's answer.
    cancelled = str((await api.book(canaries["B"]))["order_id"])
    await api.offered(cancelled, technician_id)
    for action, body in (("offer/accept", None), ("appointment", window())):
        await api.post(f"/v1/orders/{cancelled}/{action}", body, api.technician(technician_id))
    await api.post(f"/v1/orders/{cancelled}/cancel", {"reason": "fixed it"}, api.by("staff"))
    waiting = str((await api.book(canaries["C"]))["order_id"])
    await api.offered(waiting, technician_id)

    for order_id in (repaired, claim):
        await api.stage_is(order_id, "closed")
    await api.stage_is(cancelled, "cancelled")
    orders = {repaired: "A", claim: "A", cancelled: "B", waiting: "C"}
    for order_id in orders:
        await api.written(order_id)
    closed = {repaired, complaint, claim, cancelled}

    async def archive() -> set[str]:
        return archived(service)

    await eventually(archive, lambda done: closed <= done, within=ARCHIVE_SECONDS)
    return Run(
        canaries=canaries,
        orders=orders,
        repaired=repaired,
        complaint=complaint,
        claim=claim,
        cancelled=cancelled,
        waiting=waiting,
        technician_id=technician_id,
    )


# ---- the CLI through the codec endpoint ------------------------------------------------------


async def workflow_show(service: Service, workflow_id: str, *codec: str) -> str:
    """`temporal workflow show --output json` on the service's engine: what it prints."""
    process = await asyncio.create_subprocess_exec(
        str(TEMPORAL),
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--address",
        f"localhost:{service.temporal_port}",
        "--namespace",
        "default",
        *codec,
        "--output",
        "json",
        env=service.env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_SECONDS)
    assert process.returncode == 0, err.decode(errors="replace")
    return out.decode()


def with_codec(service: Service, role: str) -> tuple[str, ...]:
    return (
        "--codec-endpoint",
        f"{service.url}/v1/codec",
        "--codec-auth",
        f"Bearer {service.token(role)}",
    )


def payloads(value: Any) -> list[tuple[str, str]]:
    """Every payload in a history's JSON: (encoding, data) decoded from base64, as a reader of
    `workflow show --output json` sees them once decoded."""
    found: list[tuple[str, str]] = []
    if isinstance(value, list):
        for item in value:
            found += payloads(item)
    elif isinstance(value, dict):
        if isinstance(value.get("metadata"), dict) and isinstance(value.get("data"), str):
            encoding = base64.b64decode(value["metadata"].get("encoding", "")).decode()
            data = base64.b64decode(value["data"]).decode(errors="replace")
            found.append((encoding, data))
        for item in value.values():
            found += payloads(item)
    return found


def started_input(history: Json) -> tuple[str, str]:
    """The workflow's input (the booking), as the history's first event holds it."""
    first = history["events"][0]["workflowExecutionStartedEventAttributes"]
    [booking] = payloads(first["input"])
    return booking


def sealed(output: str) -> list[str]:
    """The decoded payloads still holding sealed personal data ("pd1:<key id>:..."), which the
    codec opens or redacts for whoever reads them through it."""
    return [data for _, data in payloads(json.loads(output)) if "pd1:" in data]


def in_clear(text: str, canary: Canary) -> list[str]:
    """The canary's fields the text holds as typed."""
    return [field for field, value in canary.fields().items() if value in text]


async def test_cli_shows_the_customer_to_a_supervisor_redacted_to_an_auditor_else_encrypted(
    service: Service, run: Run
) -> None:
    if not running(service):  # the canary test, run first, stopped it
        service.up()
    canary = run.canaries["A"]

    supervisor = await workflow_show(service, run.repaired, *with_codec(service, "supervisor"))
    encoding, booking = started_input(json.loads(supervisor))
    assert encoding == "json/plain"
    assert in_clear(booking, canary) == list(PERSONAL_FIELDS), booking
    assert REDACTED not in booking
    assert not sealed(supervisor), "a payload shown to a supervisor holds sealed text"
    # The leak search finds what a supervisor is shown, inside the base64 the CLI prints.
    found = find(supervisor.encode(), run.canaries["A"].needles("A"), "supervisor's output")
    assert {hit.canary for hit in found} >= {f"A {field}" for field in PERSONAL_FIELDS}

    auditor = await workflow_show(service, run.repaired, *with_codec(service, "auditor"))
    encoding, booking = started_input(json.loads(auditor))
    assert encoding == "json/plain"
    assert json.loads(booking)["booking"]["customer"] == {
        "name": REDACTED,
        "phone": REDACTED,
        "email": REDACTED,
        "address": REDACTED,
        "region": "pudong",
        "locale": "zh",
    }
    assert not find(auditor.encode(), run.needles(), "auditor's output")
    assert not sealed(auditor), "a payload shown to an auditor holds sealed text"

    raw = await workflow_show(service, run.repaired)
    encoding, booking = started_input(json.loads(raw))
    assert encoding == ENCRYPTED
    assert REDACTED not in raw
    assert all(REDACTED not in data for _, data in payloads(json.loads(raw)))
    assert not find(raw.encode(), run.needles(), "output without the codec")


# ---- the canary test ---------------------------------------------------------------------------


def planted_blob(canary: Canary) -> bytes:
    """A payload holding the canary, base64 in JSON, between binary bytes: as a database page
    holds an archived history."""
    payload = json.dumps({"customer": {"name": canary.name, "phone": canary.phone}}).encode()
    history = json.dumps(
        {"payloads": [{"metadata": {"encoding": "anNvbi9wbGFpbg=="}, "data": b64(payload)}]}
    )
    return b"\x00\x13\xff" + history.encode() + b"\x00\x07\x81"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def archived_histories(database: Path, workdir: Path) -> dict[str, Json]:
    """The archived histories, as the engine's JSON: workflow id -> history."""
    with closing(sqlite3.connect(copy_database(database, workdir))) as connection:
        rows = connection.execute("SELECT workflow_id, history_json FROM history_archive")
        return {workflow_id: json.loads(text) for workflow_id, text in rows}


def stored_contacts(database: Path, workdir: Path) -> dict[str, list[str | None]]:
    """Per order: the read model's customer name and phone, and the destinations of the
    messages to the customer in the outbox."""
    stored: dict[str, list[str | None]] = {}
    with closing(sqlite3.connect(copy_database(database, workdir))) as connection:
        for order_id, name, phone in connection.execute(
            "SELECT order_id, customer_name, customer_phone FROM orders"
        ):
            stored.setdefault(order_id, []).extend([name, phone])
        for order_id, destination in connection.execute(
            "SELECT order_id, destination FROM notifications WHERE recipient = 'customer'"
        ):
            stored.setdefault(order_id, []).append(destination)
    return stored


def key_ids(values: list[str | None]) -> set[str | None]:
    """The personal-data keys the values are sealed with (None for a value in clear)."""
    return {sealed_key_id(value) for value in values}


def report(hits: list[Hit]) -> str:
    shown = "\n".join(str(hit) for hit in hits[:40])
    more = f"\n... and {len(hits) - 40} more" if len(hits) > 40 else ""
    return f"{len(hits)} canary hits:\n{shown}{more}"


async def test_no_canary_is_written_anywhere_in_clear(
    service: Service, api: Api, run: Run, tmp_path: Path
) -> None:
    if not running(service):
        service.up()
    # Those allowed see the customer in clear, and the leak search finds it there.
    for order_id, label in run.orders.items():
        canary = run.canaries[label]
        staff = await api.order(order_id, "staff")
        assert staff.status_code == 200, staff.text
        assert {f: staff.json()["customer"][f] for f in PERSONAL_FIELDS} == canary.fields()
        found = {hit.canary for hit in find(staff.content, canary.needles(label), "staff")}
        assert found >= {f"{label} {field}" for field in (*PERSONAL_FIELDS, "tag")}, found
        auditor = await api.order(order_id, "auditor")
        assert auditor.status_code == 200, auditor.text
        assert {f: auditor.json()["customer"][f] for f in PERSONAL_FIELDS} == dict.fromkeys(
            PERSONAL_FIELDS
        )
        assert not find(auditor.content, run.needles(), "auditor's answer")
    # The search finds a canary planted in a payload in base64 in a file.
    planted = tmp_path / "planted.bin"
    planted.write_bytes(planted_blob(run.canaries["A"]))
    planted_hits = find_in_files([planted], run.needles())
    assert {hit.canary for hit in planted_hits} >= {"A name", "A phone"}
    assert all("in base64" in hit.where for hit in planted_hits)

    assert service.ctrl_c() == 0  # the files flushed and closed
    files = files_under(service.data_dir)
    names = {path.name for path in files}
    assert {"temporal.db", "records.db", "output.log"} <= names, names

    # The search reads the engine's database (the technician's id: a search attribute, in
    # clear) and the payloads in the archive's histories (the same, there in base64).
    probe = {"technician id": run.technician_id}
    engine = service.data_dir / "temporal.db"
    assert find_in_files([p for p in files if p.name.startswith(engine.name)], probe)
    in_history = find_in_database(engine, probe, tmp_path / "probe")
    assert any("history_node.data" in hit.where for hit in in_history), in_history
    records = service.data_dir / "records.db"
    in_archive = find_in_database(records, probe, tmp_path / "probe")
    assert any("history_json" in hit.where and "in base64" in hit.where for hit in in_archive)
    histories = archived_histories(records, tmp_path / "archive")
    assert {run.repaired, run.complaint, run.claim, run.cancelled} <= histories.keys()

    # No canary anywhere: in the files' bytes, in the databases' values, in the archive's
    # payloads (each in clear, and decoded from every base64 run they hold).
    hits = find_in_files(files, run.needles())
    for database in (engine, records):
        hits += find_in_database(database, run.needles(), tmp_path / "copies")
    for workflow_id, history in histories.items():
        for n, (_, data) in enumerate(payloads(history)):
            where = f"archived history of {workflow_id}, payload {n}"
            hits += find(data.encode(errors="replace"), run.needles(), where)
    assert not hits, report(hits)

    # Both protections are in place: the archived bookings are encrypted, and the read model and
    # the outbox hold the customer's contact sealed with a key of the order's own (a warranty
    # claim's order with its original's).
    for workflow_id in (run.repaired, run.claim, run.cancelled):
        encoding, _ = started_input(histories[workflow_id])
        assert encoding == ENCRYPTED, f"{workflow_id}'s booking is archived in clear"
    stored = stored_contacts(records, tmp_path / "contacts")
    keys = {order_id: key_ids(stored[order_id]) for order_id in run.orders}
    for order_id in run.orders:
        assert stored[order_id], f"{order_id}: no name, phone or message destination stored"
        assert len(keys[order_id]) == 1, stored[order_id]
        assert None not in keys[order_id], stored[order_id]
    assert keys[run.claim] == keys[run.repaired]
    others = [keys[order_id] for order_id in run.orders if order_id != run.claim]
    assert len(set.union(*others)) == len(others), keys
