"""Complaints on closed and cancelled orders.

Most complaints come after the work, when the order's workflow has ended. Such a complaint is
not sent to the order (the closed order stays closed and its history is not reopened): its
own workflow is started here, linked to the order by its id `<order>-C<n>`, and records itself
and sends its own messages (workflows/complaint.py). It is taken within the policy's
`complaint.window_after_close` of the order's end, and at most `complaint.per_order_per_day`
a day, like any other.
"""

import hashlib
import re
from datetime import datetime

from pydantic import BaseModel
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import WorkflowAlreadyStartedError

from api.errors import Conflict, TooMany, Unavailable, engine_errors
from api.orders import request_hash
from core import queries
from core.settings import Settings
from models.complaint import AfterClose, ComplaintFiling, ComplaintInput
from models.notification import Contact
from models.order import Actor, Order, local_date, local_time_text
from models.records import IdempotencyKeyRow
from workflows.complaint import ComplaintWorkflow

NEW_ID_ATTEMPTS = 5
FILING_KEY = "filing_key"  # the complaint workflow's memo: the Idempotency-Key it was filed with
NUMBER = re.compile(r"-C(\d+)$")


def ended_at(order: Order) -> datetime:
    """When the order was closed or cancelled: its last move to that stage."""
    moved = f"stage:{order.stage}"
    return max(entry.at for entry in order.timeline if entry.action == moved)


async def file_after_close(
    temporal: Client,
    session: AsyncSession,
    settings: Settings,
    order: Order,
    filing: ComplaintFiling,
    caller: Actor,
    *,
    now: datetime,
    idempotency_key: str | None = None,
    body: BaseModel | None = None,
) -> str:
    """Start the complaint's workflow; returns its id. A retry with the same Idempotency-Key
    answers the complaint the first call filed."""
    policy = settings.policy
    window = policy.complaint.window_after_close
    until = policy.deadline(ended_at(order), window)
    if now > until:
        raise Conflict(
            f"cannot file a complaint: order is {order.stage}; complaints are taken for"
            f" {window} after it ended, until {local_time_text(until, policy)}"
        )
    filed = await queries.complaints_filed(session, order.order_id)
    filed |= {c.complaint_id: c.filed_at for c in order.complaints if c.filed_at is not None}
    limit = policy.complaint.per_order_per_day
    today = local_date(now, policy)
    if sum(1 for at in filed.values() if local_date(at, policy) == today) >= limit:
        raise TooMany(f"cannot file a complaint: an order takes at most {limit} complaints a day")

    def input_for(complaint_id: str) -> ComplaintInput:
        return ComplaintInput(
            complaint_id=complaint_id,
            order_id=order.order_id,
            filing=filing,
            filed_by=caller,
            filed_at=now,
            technician_id=order.technician_id,
            policy=policy,
            after_close=AfterClose(
                customer=Contact(phone=order.customer.phone, email=order.customer.email),
                locale=order.customer.locale,
            ),
        )

    numbers = [
        int(m[1])
        for cid in (*filed, *(c.complaint_id for c in order.complaints))
        if (m := NUMBER.search(cid))
    ]
    first = max(numbers, default=0) + 1
    if idempotency_key is None:
        for number in range(first, first + NEW_ID_ATTEMPTS):
            complaint_id = f"{order.order_id}-C{number}"
            if await _start(temporal, settings, input_for(complaint_id), filing_key=None):
                return complaint_id
        raise Unavailable("complaints are being filed on this order at the same moment; retry")

    # The key is bound to a complaint id before its workflow starts: a retry after any failure
    # finds the key and finishes starting that complaint, never a second one.
    scoped = (
        "file-complaint-after-close:"
        + hashlib.sha256(f"{order.order_id}\n{idempotency_key}".encode()).hexdigest()
    )
    digest = request_hash(body) if body is not None else ""
    kept = await queries.remember_key(
        session,
        IdempotencyKeyRow(
            key=scoped,
            request_hash=digest,
            order_id=f"{order.order_id}-C{first}",
            created_at=now,
        ),
    )
    if kept.request_hash != digest:
        raise Conflict("this Idempotency-Key was already used for a different request")
    complaint_id = kept.order_id  # this call's, or the first call's with this key
    if await _start(temporal, settings, input_for(complaint_id), filing_key=scoped):
        return complaint_id
    with engine_errors(not_found="no such complaint"):
        started = await temporal.get_workflow_handle(complaint_id).describe()
    if await started.memo_value(FILING_KEY, None) == scoped:
        return complaint_id  # started by the first call with this key
    # Another filing took the number meanwhile: the key is let go, and a retry takes the next.
    await session.delete(kept)
    await session.commit()
    raise Unavailable("complaints are being filed on this order at the same moment; retry")


async def _start(
    temporal: Client, settings: Settings, input: ComplaintInput, *, filing_key: str | None
) -> bool:
    """Start the complaint's workflow; False if a workflow of that id exists already."""
    try:
        with engine_errors():
            await temporal.start_workflow(
                ComplaintWorkflow.run,
                input,
                id=input.complaint_id,
                task_queue=settings.task_queue,
                id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
                memo={FILING_KEY: filing_key} if filing_key else None,
            )
    except WorkflowAlreadyStartedError:
        return False
    return True
