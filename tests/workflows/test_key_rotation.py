"""Rotating the payload key in the middle of an order's life (core/codec.py): the order, written
under the old key, finishes under a ring that puts a new key first; old and new payloads both
decode with that ring, and its history replays."""

import uuid

from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
from temporalio.api.history.v1 import HistoryEvent
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker

from core.codec import KEY_ID, KeyRing, data_converter
from models.order import CancelInput, OrderInput, Stage
from tests.factories import create_actor, create_order_input
from tests.harness import RecordsSpy, act, assign
from workflows.complaint import ComplaintWorkflow
from workflows.registry import WORKFLOWS
from workflows.repair_order import RepairOrderWorkflow

OLD = KeyRing.new_entry("2026-old")
NEW = KeyRing.new_entry("2027-new")


def client_with(env: WorkflowEnvironment, ring: KeyRing) -> Client:
    return Client(**(env.client.config() | {"data_converter": data_converter(ring)}))


def worker(client: Client, task_queue: str, spy: RecordsSpy) -> Worker:
    # No cache, so no sticky queue: the next worker gets the order's tasks at once (the test
    # server's clock, which ends a sticky queue's wait, stands still here).
    return Worker(
        client,
        task_queue=task_queue,
        max_cached_workflows=0,
        workflows=[RepairOrderWorkflow, ComplaintWorkflow],
        activities=[
            spy.record_order_events,
            spy.send_notification,
            spy.find_candidates,
            spy.schedule_erasure,
        ],
    )


def payloads(message: Message) -> list[Payload]:
    """Every payload a message holds, wherever in its fields, but its search attributes: the
    engine indexes those, so they are never encrypted (and hold no personal data)."""
    if isinstance(message, Payload):
        return [message]
    found: list[Payload] = []
    for field, value in message.ListFields():
        if field.name == "search_attributes":
            continue
        if isinstance(value, Message):
            found += payloads(value)
        elif hasattr(value, "values"):  # a map
            found += [
                p for item in value.values() if isinstance(item, Message) for p in payloads(item)
            ]
        elif not isinstance(value, str | bytes | int | float | bool):  # a repeated field
            found += [p for item in value if isinstance(item, Message) for p in payloads(item)]
    return found


def service_payloads(event: HistoryEvent) -> list[Payload]:
    """What the service wrote into the event; in a marker, only a local activity's result (the
    rest is the SDK's bookkeeping: patch ids, a local activity's attempt and timing)."""
    if event.HasField("marker_recorded_event_attributes"):
        details = event.marker_recorded_event_attributes.details
        return list(details["result"].payloads) if "result" in details else []
    return payloads(event)


async def test_an_order_finishes_across_a_key_rotation(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    old_ring, rotated = KeyRing.parse(OLD), KeyRing.parse(f"{NEW} {OLD}")
    before, after = (
        client_with(time_skipping_env, old_ring),
        client_with(time_skipping_env, rotated),
    )
    task_queue, spy = f"tq-{uuid.uuid4().hex}", RecordsSpy()
    now = await time_skipping_env.get_current_time()
    order_input: OrderInput = create_order_input(f"RF-KEYS-{uuid.uuid4().hex[:8]}", booked_at=now)

    async with worker(before, task_queue, spy):
        handle = await before.start_workflow(
            RepairOrderWorkflow.run, order_input, id=order_input.order_id, task_queue=task_queue
        )
        await assign(handle)
    # The worker restarts with the new ring: it replays what the old key wrote, then writes
    # with the new one.
    async with worker(after, task_queue, spy):
        rotated_handle = after.get_workflow_handle_for(RepairOrderWorkflow.run, handle.id)
        await act(
            rotated_handle,
            RepairOrderWorkflow.cancel,
            CancelInput(actor=create_actor(), reason="fixed"),
        )
        outcome = await rotated_handle.result()
    assert outcome.stage == Stage.CANCELLED

    history = await rotated_handle.fetch_history()
    stored = [payload for event in history.events for payload in service_payloads(event)]
    assert {payload.metadata[KEY_ID] for payload in stored} == {b"2026-old", b"2027-new"}
    decoded = await data_converter(rotated).payload_codec.decode(stored)  # type: ignore[union-attr]
    assert all(payload.metadata["encoding"] != b"binary/encrypted" for payload in decoded)
    await Replayer(workflows=WORKFLOWS, data_converter=data_converter(rotated)).replay_workflow(
        history
    )
