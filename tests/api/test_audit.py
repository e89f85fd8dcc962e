"""Auditors take an order, finished or running, export its engine history, replay it against
the current code and check the records store against it; after the engine has forgotten the
order, from the archive. Against a real dev server, worker, records store and `temporal` CLI."""

import asyncio
import io
import json
import os
import sys
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHistory
from temporalio.service import RPCError, RPCStatusCode

from api.main import create_app
from api.routes.audit import replay_workflows
from core.archive import archive_closed_workflows, keep_archiving
from core.settings import Settings
from models.records import EventRow, HistoryArchiveRow
from tests.api.client import Auth, serve
from tests.api.drive import COMPLAINT, Drive, Driven, Json, Role, act, problem
from tests.audit.incompatible import INCOMPATIBLE_WORKFLOWS
from tests.payload_keys import TEST_PAYLOAD_KEYS
from tests.servers import BIN
from tests.waiting import eventually
from worker import replay_running

ROOT = Path(__file__).parent.parent.parent


async def closed(temporal: Client, *workflow_ids: str) -> None:
    for workflow_id in workflow_ids:
        handle = temporal.get_workflow_handle(workflow_id)
        await eventually(
            lambda h=handle: h.describe(),  # type: ignore[misc]
            lambda d: d.status == WorkflowExecutionStatus.COMPLETED,
        )


async def gone(temporal: Client, workflow_id: str) -> bool:
    try:
        await temporal.get_workflow_handle(workflow_id).fetch_history()
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            return True
        raise
    return False


async def delete_from_engine(temporal: Client, *workflow_ids: str) -> None:
    """What the namespace's retention does to a closed order, at once."""
    for workflow_id in workflow_ids:
        await temporal.workflow_service.delete_workflow_execution(
            DeleteWorkflowExecutionRequest(
                namespace=temporal.namespace,
                workflow_execution=WorkflowExecution(workflow_id=workflow_id),
            )
        )
    for workflow_id in workflow_ids:
        # The dev server deletes a closed workflow about half a minute after being asked.
        await eventually(lambda w=workflow_id: gone(temporal, w), bool, within=90)  # type: ignore[misc]


async def run(*argv: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    output, errors = await asyncio.wait_for(process.communicate(), timeout=120)
    assert process.returncode is not None
    return process.returncode, output.decode() + errors.decode()


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without any Temporal CLI or repairflow configuration of the machine, but
    the payload key ring the tests' histories are encrypted with."""
    kept = {k: v for k, v in os.environ.items() if not k.startswith(("TEMPORAL_", "REPAIRFLOW_"))}
    return kept | {"REPAIRFLOW_PAYLOAD_KEYS": TEST_PAYLOAD_KEYS} | extra


async def cli_export(temporal: Client, workflow_id: str, home: Path) -> str:
    """The history as an operator exports it with the engine's own CLI."""
    status, output = await run(
        BIN / "temporal",
        "workflow",
        "show",
        "--workflow-id",
        workflow_id,
        "--output",
        "json",
        "--address",
        temporal.service_client.config.target_host,
        "--namespace",
        temporal.namespace,
        env=clean_env(HOME=str(home)),  # no profile from the machine's CLI configuration
    )
    assert status == 0, output
    return output


async def replay_gate(*files: Path) -> tuple[int, str]:
    return await run(sys.executable, "worker.py", "replay", *files, env=clean_env())


async def history(api: httpx.AsyncClient, order: Driven) -> Json:
    response = await api.get(f"{order.url}/history", headers=order.by("auditor"))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def replay(api: httpx.AsyncClient, order: Driven) -> Json:
    response = await api.post(f"{order.url}/replay", headers=order.by("auditor"))
    assert response.status_code == 200, response.text
    body: Json = response.json()
    return body


async def finish_complaint(api: httpx.AsyncClient, order: Driven) -> str:
    filed = await api.post(f"{order.url}/complaints", json=COMPLAINT, headers=order.by("customer"))
    assert filed.status_code == 201, filed.text
    complaint_id: str = filed.json()["complaint_id"]
    steps: list[tuple[str, Json]] = [
        ("acknowledge", {}),
        ("resolve", {"resolution": "cleaned up and apologised"}),
        ("follow-up", {"satisfied": True}),
    ]
    for action, body in steps:
        response = await act(api, complaint_id, action, order.by("staff"), **body)
        assert response.status_code == 200, f"{action}: {response.text}"
    return complaint_id


@pytest.fixture
async def finished_order(api: httpx.AsyncClient, drive: Drive, temporal: Client) -> Driven:
    """Out of warranty, diagnosed and quoted; the customer declines: the order is closed."""
    order = await drive("diagnosed", out_of_warranty=True)
    declined = await api.post(f"{order.url}/quote/decline", headers=order.by("customer"))
    assert declined.status_code == 200, declined.text
    assert declined.json()["stage"] == "closed"
    await closed(temporal, order.order_id)
    return order


@pytest.fixture
async def finished_order_with_complaint(
    api: httpx.AsyncClient, drive: Drive, temporal: Client
) -> tuple[Driven, str]:
    """A complaint filed on site and closed, then the quote declined: both workflows closed."""
    order = await drive("diagnosed", out_of_warranty=True)
    complaint_id = await finish_complaint(api, order)
    await closed(temporal, complaint_id)
    declined = await api.post(f"{order.url}/quote/decline", headers=order.by("customer"))
    assert declined.status_code == 200, declined.text
    await closed(temporal, order.order_id)
    return order, complaint_id


@pytest.fixture
async def incompatible_api(settings: Settings, worker: None) -> AsyncIterator[httpx.AsyncClient]:
    """The API as it would be after deploying the incompatible workflow change."""
    app = create_app(settings)
    app.dependency_overrides[replay_workflows] = lambda: INCOMPATIBLE_WORKFLOWS
    async for http in serve(app):
        yield http


class TestHistory:
    async def test_export_is_the_engines_history_and_passes_the_replay_gate(
        self, api: httpx.AsyncClient, finished_order: Driven, temporal: Client, tmp_path: Path
    ) -> None:
        """The API's and the CLI's exports hold the same events as the engine; both replay."""
        order_id = finished_order.order_id
        response = await api.get(
            f"{finished_order.url}/history", headers=finished_order.by("auditor")
        )
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        api_file, cli_file = tmp_path / "api.json", tmp_path / "cli.json"
        api_file.write_text(response.text)
        cli_file.write_text(await cli_export(temporal, order_id, tmp_path))

        engine = await temporal.get_workflow_handle(order_id).fetch_history()
        from_api = WorkflowHistory.from_json(order_id, response.text)
        from_cli = WorkflowHistory.from_json(order_id, cli_file.read_text())
        assert from_api.events == engine.events
        assert from_cli.events == engine.events
        body = response.json()
        assert (body["order_id"], body["workflow_id"], body["run_id"]) == (
            order_id,
            order_id,
            engine.run_id,
        )
        assert (body["source"], body["children"], body["missing"]) == ("engine", [], [])

        status, output = await replay_gate(api_file, cli_file)
        assert status == 0, output
        assert f"ok                {order_id}  ({len(engine.events)} events, {api_file})" in output
        assert f"ok                {order_id}  ({len(engine.events)} events, {cli_file})" in output

    async def test_complaint_is_exported_with_its_order(
        self,
        api: httpx.AsyncClient,
        finished_order_with_complaint: tuple[Driven, str],
        temporal: Client,
        tmp_path: Path,
    ) -> None:
        """The complaint's own workflow history comes along, and replays too."""
        order, complaint_id = finished_order_with_complaint
        body = await history(api, order)
        [complaint] = body["children"]
        assert (complaint["workflow_id"], complaint["workflow_type"]) == (
            complaint_id,
            "ComplaintWorkflow",
        )
        engine = await temporal.get_workflow_handle(complaint_id).fetch_history()
        assert WorkflowHistory.from_json(complaint_id, complaint).events == engine.events
        exported = tmp_path / "order.json"
        exported.write_text(
            (await api.get(f"{order.url}/history", headers=order.by("auditor"))).text
        )
        status, output = await replay_gate(exported)
        assert status == 0, output
        assert f"ok                {complaint_id}  (" in output

    @pytest.mark.parametrize("role", ["staff", "supervisor", "technician", "customer", "admin"])
    async def test_other_roles_are_refused(
        self, api: httpx.AsyncClient, finished_order: Driven, role: Role
    ) -> None:
        """Only auditors export or replay an order's history."""
        exported = await api.get(f"{finished_order.url}/history", headers=finished_order.by(role))
        replayed = await api.post(f"{finished_order.url}/replay", headers=finished_order.by(role))
        assert problem(exported, 403)["detail"] == problem(replayed, 403)["detail"]

    @pytest.mark.parametrize("order_id", ["RF261124-ZZZZZZ", "RF261124-ZZZZZZ-W9", "not-an-order"])
    async def test_unknown_order_is_404(
        self, api: httpx.AsyncClient, auth: Auth, order_id: str
    ) -> None:
        """Neither the engine nor the archive knows it."""
        exported = await api.get(f"/v1/orders/{order_id}/history", headers=auth("auditor"))
        replayed = await api.post(f"/v1/orders/{order_id}/replay", headers=auth("auditor"))
        assert (
            problem(exported, 404)["detail"] == problem(replayed, 404)["detail"] == "no such order"
        )

    async def test_without_a_token_is_401(
        self, api: httpx.AsyncClient, finished_order: Driven
    ) -> None:
        problem(await api.get(f"{finished_order.url}/history"), 401)


class TestReplay:
    async def test_finished_order_is_deterministic_and_matches_its_records(
        self, api: httpx.AsyncClient, finished_order: Driven, temporal: Client
    ) -> None:
        """Every event reproduced; the timeline tells who did what; the records agree."""
        order_id = finished_order.order_id
        report = await replay(api, finished_order)
        engine = await temporal.get_workflow_handle(order_id).fetch_history()
        assert (report["deterministic"], report["error"]) == (True, None)
        assert report["events_replayed"] == len(engine.events)
        assert [
            (w["workflow_id"], w["source"], w["deterministic"]) for w in report["workflows"]
        ] == [(order_id, "engine", True)]
        assert (report["records_match"], report["discrepancies"]) == (True, [])

        actions = [(e["name"], e["actor"]) for e in report["timeline"] if e["kind"] == "action"]
        assert actions == [
            ("assign", "staff:test-staff"),
            ("check_in", "technician:test-technician"),
            ("diagnose", "technician:test-technician"),
            ("authorize_quote", "supervisor:test-supervisor"),  # its amount is off the list
            ("decline_quote", f"customer:{order_id}"),
        ]
        assign = next(e for e in report["timeline"] if e["name"] == "assign")
        assert assign["arguments"][0]["technician_id"] == finished_order.technician_id
        found = next(e for e in report["timeline"] if e["name"] == "find_candidates")
        assert found["result"], "the activity's result: the technicians it found"
        assert all(candidate["technician_id"] for candidate in found["result"])
        assert report["timeline"][-1]["kind"] == "closed"

    async def test_running_order_replays_too(self, api: httpx.AsyncClient, drive: Drive) -> None:
        """An order still on site replays as far as it has got."""
        order = await drive("checked_in")
        report = await replay(api, order)
        assert report["deterministic"] is True, report["error"]
        assert report["records_match"] is True, report["discrepancies"]
        assert [e["name"] for e in report["timeline"] if e["kind"] == "action"][-1] == "check_in"

    async def test_incompatible_code_is_not_deterministic_with_the_reason(
        self, incompatible_api: httpx.AsyncClient, finished_order: Driven
    ) -> None:
        """After an activity is inserted at check-in, the order no longer replays: said why."""
        response = await incompatible_api.post(
            f"{finished_order.url}/replay", headers=finished_order.by("auditor")
        )
        assert response.status_code == 200, response.text
        report = response.json()
        assert report["deterministic"] is False
        assert report["error"].startswith(f"{finished_order.order_id}: ")
        assert "Nondeterminism error" in report["error"]
        [workflow] = report["workflows"]
        assert workflow["deterministic"] is False
        assert 0 < report["events_replayed"] < workflow["events"]
        assert report["records_match"] is True

    async def test_deleted_event_row_is_a_missing_discrepancy(
        self, api: httpx.AsyncClient, finished_order: Driven, records_engine: AsyncEngine
    ) -> None:
        """An event the history wrote and the records store lost is named by its seq."""
        order_id = finished_order.order_id
        async with AsyncSession(records_engine) as session, session.begin():
            row = await session.scalar(
                select(EventRow).where(EventRow.order_id == order_id, EventRow.seq == 3)
            )
            assert row is not None
            logged = {"at": row.at, "actor": row.actor, "action": row.action, "detail": row.detail}
            await session.execute(delete(EventRow).where(col(EventRow.id) == row.id))
        report = await replay(api, finished_order)
        assert report["deterministic"] is True
        assert report["records_match"] is False
        [discrepancy] = report["discrepancies"]
        assert (discrepancy["order_id"], discrepancy["seq"], discrepancy["kind"]) == (
            order_id,
            3,
            "missing",
        )
        assert discrepancy["found"] is None
        expected = discrepancy["expected"]
        assert (expected["actor"], expected["action"], expected["detail"]) == (
            logged["actor"],
            logged["action"],
            logged["detail"],
        )


class TestArchive:
    async def test_order_gone_from_the_engine_is_audited_from_the_archive(
        self,
        api: httpx.AsyncClient,
        finished_order_with_complaint: tuple[Driven, str],
        temporal: Client,
        records_engine: AsyncEngine,
        settings: Settings,
        tmp_path: Path,
    ) -> None:
        """Archived at close, deleted from the engine: the order still reads as it was, and
        history, replay and records check still work, for the order and its complaint."""
        order, complaint_id = finished_order_with_complaint
        before = await history(api, order)
        shown = await api.get(order.url, headers=order.by("staff"))
        assert shown.status_code == 200, shown.text
        assert shown.json()["source"] == "engine"
        # Visibility lists a workflow as closed a moment after it closed: a round or two.
        await eventually(
            lambda: archive_then_read(
                temporal, records_engine, settings, order.order_id, complaint_id
            ),
            lambda rows: len(rows) == 2,
        )
        await delete_from_engine(temporal, order.order_id, complaint_id)

        for role in ("customer", "auditor"):
            kept = await api.get(order.url, headers=order.by(role))
            assert kept.status_code == 200, kept.text
            assert kept.json()["source"] == "archive"
        kept = await api.get(order.url, headers=order.by("staff"))
        assert kept.status_code == 200, kept.text
        # The same order, field for field, the customer's details opened for staff as before.
        assert kept.json() == shown.json() | {"source": "archive"}

        after = await history(api, order)
        assert after["source"] == "archive"
        assert [c["source"] for c in after["children"]] == ["archive"]
        assert after["events"] == before["events"]
        assert after["children"][0]["events"] == before["children"][0]["events"]

        report = await replay(api, order)
        assert (report["deterministic"], report["records_match"]) == (True, True), report
        assert {(w["workflow_id"], w["source"]) for w in report["workflows"]} == {
            (order.order_id, "archive"),
            (complaint_id, "archive"),
        }
        assert any(e["name"] == "decline_quote" for e in report["timeline"])

        exported = tmp_path / "archived.json"
        exported.write_text(json.dumps(after))
        status, output = await replay_gate(exported)
        assert status == 0, output

    async def test_archiving_again_changes_nothing(
        self,
        finished_order: Driven,
        temporal: Client,
        records_engine: AsyncEngine,
        settings: Settings,
    ) -> None:
        """An archived history is not fetched or written again."""
        order_id = finished_order.order_id
        [first] = await eventually(
            lambda: archive_then_read(temporal, records_engine, settings, order_id),
            lambda rows: len(rows) == 1,
        )
        await archive_round(temporal, records_engine, settings)
        [again] = await archived(records_engine, order_id)
        assert (again.archived_at, again.history_json) == (first.archived_at, first.history_json)
        assert again.order_id == order_id

    async def test_running_order_is_not_archived(
        self,
        drive: Drive,
        temporal: Client,
        records_engine: AsyncEngine,
        settings: Settings,
    ) -> None:
        """Only a closed history is final."""
        order = await drive("checked_in")
        await archive_round(temporal, records_engine, settings)
        assert await archived(records_engine, order.order_id) == []

    async def test_worker_archives_in_the_background(
        self,
        finished_order: Driven,
        temporal: Client,
        records_engine: AsyncEngine,
        settings: Settings,
    ) -> None:
        """The worker's archiving loop picks a closed order up by itself."""
        task = asyncio.create_task(
            keep_archiving(
                temporal,
                records_engine,
                task_queue=settings.task_queue,
                interval=timedelta(milliseconds=200),
            )
        )
        try:
            await eventually(lambda: archived(records_engine, finished_order.order_id), bool)
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)

    async def test_archiving_outlives_an_unreachable_engine(
        self, records_engine: AsyncEngine, settings: Settings, log_output: io.StringIO
    ) -> None:
        """A round that fails is logged and retried; the worker's loop does not die of it."""
        nowhere = await Client.connect("127.0.0.1:1", lazy=True)
        task = asyncio.create_task(
            keep_archiving(
                nowhere,
                records_engine,
                task_queue=settings.task_queue,
                interval=timedelta(milliseconds=50),
            )
        )
        try:

            async def failures() -> int:
                return log_output.getvalue().count("archiving round failed")

            await eventually(failures, lambda count: count >= 2)
            assert not task.done()
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


class TestReplayRunning:
    async def test_running_orders_replay_from_the_engine(
        self, drive: Drive, settings: Settings
    ) -> None:
        """`python worker.py replay --running` replays the orders in flight: exit 0."""
        order = await drive("checked_in")
        env = clean_env(
            REPAIRFLOW_TEMPORAL_ADDRESS=settings.temporal_address,
            REPAIRFLOW_TASK_QUEUE=settings.task_queue,
        )
        status, output = await run(sys.executable, "worker.py", "replay", "--running", env=env)
        assert status == 0, output
        assert f"ok                {order.order_id}  (" in output
        assert f"running workflow(s) on {settings.task_queue} replayed" in output

    async def test_incompatible_code_fails_the_gate_naming_the_order(
        self, drive: Drive, settings: Settings
    ) -> None:
        """Deploying the change would strand the checked-in order: status 1, named."""
        order = await drive("checked_in")
        out = io.StringIO()
        status = await replay_running(settings, INCOMPATIBLE_WORKFLOWS, out)
        assert status == 1, out.getvalue()
        assert f"failed            {order.order_id}  (engine): " in out.getvalue()

    async def test_unreachable_engine_exits_2(self, settings: Settings) -> None:
        """No engine, no verdict: the gate does not pass."""
        out = io.StringIO()
        nowhere = settings.model_copy(update={"temporal_address": "127.0.0.1:1"})
        assert await replay_running(nowhere, out=out) == 2
        assert "cannot reach the workflow engine at 127.0.0.1:1" in out.getvalue()


# ---- helpers over the archive ------------------------------------------------------------------


async def archive_round(temporal: Client, engine: AsyncEngine, settings: Settings) -> None:
    await archive_closed_workflows(temporal, engine, task_queue=settings.task_queue)


async def archived(engine: AsyncEngine, *workflow_ids: str) -> list[HistoryArchiveRow]:
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(HistoryArchiveRow).where(col(HistoryArchiveRow.workflow_id).in_(workflow_ids))
        )
        return list(rows)


async def archive_then_read(
    temporal: Client, engine: AsyncEngine, settings: Settings, *workflow_ids: str
) -> list[HistoryArchiveRow]:
    await archive_round(temporal, engine, settings)
    return await archived(engine, *workflow_ids)
