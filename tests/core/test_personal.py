"""Customers' personal data sealed per order (core/personal.py), on each records engine: sealed
values open for as long as the order's key lives, and erasing the order destroys the key."""

import asyncio
import base64
import os
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from core.codec import KeyRing
from core.personal import (
    REDACTED,
    KeyPool,
    Opener,
    PersonalDataUnreadable,
    erase_order,
    order_key,
    redact,
    seal,
    seal_customer,
    sealed_key_id,
)
from models.notification import Recipient, Template
from models.order import SealedCustomer, Stage
from models.records import NotificationRow, OrderRow, PersonalDataKeyRow
from tests.factories import BOOKED_AT, create_customer, create_record_input

ORDER = "RF261120-ABC123"
CLAIM = f"{ORDER}-W1"  # a warranty claim's order keeps its original's sealed values
OTHER_ORDER = "RF261120-XYZ789"
TECHNICIAN = "tech-7"
RING = KeyRing.parse(KeyRing.new_entry("ring-1"))
CUSTOMER = create_customer(
    name="Li Wei",
    phone="+86 139 0000 1111",
    email="li.wei@example.com",
    address="88 Century Ave, Pudong",
)
CLEAR = [CUSTOMER.name, CUSTOMER.phone, CUSTOMER.email, CUSTOMER.address]


def fields(customer: SealedCustomer) -> list[str | None]:
    return [customer.name, customer.phone, customer.email, customer.address]


async def sealed(engine: AsyncEngine, key_id: str = ORDER) -> SealedCustomer:
    """The customer as a booking with an Idempotency-Key for the order `key_id` seals them."""
    async with AsyncSession(engine) as session:
        key = await order_key(session, key_id, RING)
    return seal_customer(CUSTOMER, key_id, key)


async def write_order(engine: AsyncEngine, order_id: str, customer: SealedCustomer) -> None:
    """The order's read-model row and two messages it sent: the customer's (to their sealed
    phone) and the technician's (to a technician id, in clear)."""
    snapshot = create_record_input(
        1,
        Stage.BOOKED,
        order_id=order_id,
        customer_name=customer.name,
        customer_phone=customer.phone,
    ).snapshot

    def message(template: Template, recipient: Recipient, destination: str) -> NotificationRow:
        return NotificationRow(
            key=f"{order_id}:{template}",
            order_id=order_id,
            template=template.value,
            recipient=recipient.value,
            channel="sms",
            locale="zh",
            subject="",
            body="Your order is booked",
            status="sent",
            created_at=BOOKED_AT,
            destination=destination,
        )

    async with AsyncSession(engine) as session, session.begin():
        session.add(OrderRow(**snapshot.model_dump(), last_seq=1))
        session.add(message(Template.BOOKING_CONFIRMED, Recipient.CUSTOMER, customer.phone))
        session.add(message(Template.JOB_ASSIGNED, Recipient.TECHNICIAN, TECHNICIAN))


async def erase(engine: AsyncEngine, order_id: str) -> None:
    async with AsyncSession(engine) as session:
        await erase_order(session, order_id)


async def opened(engine: AsyncEngine, values: list[str | None]) -> list[str | None]:
    """The values as a process reading them now (a fresh Opener) sees them."""
    async with AsyncSession(engine) as session:
        opener = Opener(session, RING)
        return [await opener.open(value) for value in values]


async def erased(engine: AsyncEngine, value: str) -> bool:
    async with AsyncSession(engine) as session:
        return await Opener(session, RING).erased(value)


async def key_row(engine: AsyncEngine, key_id: str = ORDER) -> PersonalDataKeyRow:
    async with AsyncSession(engine) as session:
        row = await session.get(PersonalDataKeyRow, key_id)
    assert row is not None
    return row


async def order_row(engine: AsyncEngine, order_id: str) -> OrderRow:
    async with AsyncSession(engine) as session:
        row = await session.get(OrderRow, order_id)
    assert row is not None
    return row


async def destinations(engine: AsyncEngine, order_id: str) -> dict[str, str | None]:
    async with AsyncSession(engine) as session:
        rows = await session.scalars(
            select(NotificationRow).where(col(NotificationRow.order_id) == order_id)
        )
        return {row.recipient: row.destination for row in rows}


class TestSealing:
    async def test_sealed_values_open_to_the_clear_ones(self, records_store: AsyncEngine) -> None:
        customer = await sealed(records_store)
        assert await opened(records_store, fields(customer)) == CLEAR
        # Dispatch reads the region and the locale: they stay in clear.
        assert (customer.region, customer.locale) == (CUSTOMER.region, CUSTOMER.locale)

    async def test_sealed_text_shows_nothing_of_the_clear_value(
        self, records_store: AsyncEngine
    ) -> None:
        customer = await sealed(records_store)
        for value, clear in zip(fields(customer), CLEAR, strict=True):
            assert value is not None
            assert value.startswith(f"pd1:{ORDER}:")
            assert sealed_key_id(value) == ORDER
            assert clear is not None
            assert clear not in value
        assert "13900001111" not in customer.phone.replace(" ", "")
        again = await sealed(records_store)
        assert again.phone != customer.phone  # a fresh nonce each time

    async def test_clear_text_passes_through(self, records_store: AsyncEngine) -> None:
        """Orders booked before sealing hold their values in clear; they read as they are."""
        assert sealed_key_id("Li Wei") is None
        assert await opened(records_store, ["Li Wei", None]) == ["Li Wei", None]
        assert not await erased(records_store, "Li Wei")

    async def test_altered_sealed_value_is_refused(self, records_store: AsyncEngine) -> None:
        customer = await sealed(records_store)
        at = len(f"pd1:{ORDER}:") + 5
        altered = customer.name[:at] + ("B" if customer.name[at] == "A" else "A")
        altered += customer.name[at + 1 :]
        with pytest.raises(PersonalDataUnreadable, match=repr(ORDER)):
            await opened(records_store, [altered])


class TestKeyPool:
    """Bookings without an Idempotency-Key take a key made ahead, a batch per write."""

    async def test_each_booking_gets_its_own_kept_key(self, records_store: AsyncEngine) -> None:
        pool = KeyPool(records_store, RING, batch=4)
        taken = [await pool.take() for _ in range(10)]
        assert len({key_id for key_id, _ in taken}) == 10
        assert len({key for _, key in taken}) == 10
        async with AsyncSession(records_store) as session:
            rows = (await session.scalars(select(PersonalDataKeyRow))).all()
        assert len(rows) == 12  # three batches of four: two keys are still in the pool
        for key_id, key in taken:
            customer = seal_customer(CUSTOMER, key_id, key)
            assert sealed_key_id(customer.phone) == key_id
            assert await opened(records_store, fields(customer)) == CLEAR

    async def test_concurrent_bookings_never_share_a_key(self, records_store: AsyncEngine) -> None:
        pool = KeyPool(records_store, RING, batch=3)
        taken = await asyncio.gather(*(pool.take() for _ in range(20)))
        assert len({key_id for key_id, _ in taken}) == 20

    async def test_erasing_the_order_destroys_its_pool_key(
        self, records_store: AsyncEngine
    ) -> None:
        pool = KeyPool(records_store, RING, batch=2)
        key_id, key = await pool.take()
        other_id, other_key = await pool.take()
        customer = seal_customer(CUSTOMER, key_id, key)
        other = seal_customer(CUSTOMER, other_id, other_key)
        await write_order(records_store, ORDER, customer)
        await write_order(records_store, OTHER_ORDER, other)
        await erase(records_store, ORDER)
        assert (await key_row(records_store, key_id)).wrapped is None
        assert await opened(records_store, [customer.phone]) == [None]
        assert await opened(records_store, [other.phone]) == [CUSTOMER.phone]


class TestOrderKey:
    async def test_repeated_booking_gets_the_same_key(self, records_store: AsyncEngine) -> None:
        """A booking repeated with its Idempotency-Key seals with the key the first made."""
        async with AsyncSession(records_store) as session:
            first = await order_key(session, ORDER, RING)
        async with AsyncSession(records_store) as session:
            second = await order_key(session, ORDER, RING)
        assert first == second
        assert len(first) == 32
        async with AsyncSession(records_store) as session:
            assert await order_key(session, OTHER_ORDER, RING) != first

    async def test_concurrent_bookings_get_the_same_key(self, records_store: AsyncEngine) -> None:
        """The repeat arrives while the first call is still making the key."""

        async def key() -> bytes:
            async with AsyncSession(records_store) as session:
                return await order_key(session, ORDER, RING)

        first, second = await asyncio.gather(key(), key())
        assert first == second

    async def test_stored_key_is_wrapped(self, records_store: AsyncEngine) -> None:
        async with AsyncSession(records_store) as session:
            key = await order_key(session, ORDER, RING)
        wrapped = (await key_row(records_store)).wrapped
        assert wrapped is not None
        for shown in (base64.b64encode(key), base64.urlsafe_b64encode(key)):
            assert shown.decode().rstrip("=") not in wrapped
        assert key.hex() not in wrapped.lower()

    @pytest.mark.parametrize(
        "ring",
        [KeyRing.new_entry("ring-2"), KeyRing.new_entry("ring-1")],
        ids=["other-ring", "same-id-other-key"],
    )
    async def test_key_is_unreadable_with_another_ring(
        self, records_store: AsyncEngine, ring: str
    ) -> None:
        customer = await sealed(records_store)
        other = KeyRing.parse(ring)
        async with AsyncSession(records_store) as session:
            with pytest.raises(PersonalDataUnreadable, match=repr(ORDER)):
                await order_key(session, ORDER, other)
        async with AsyncSession(records_store) as session:
            with pytest.raises(PersonalDataUnreadable):
                await Opener(session, other).open(customer.name)

    async def test_key_stays_readable_after_the_ring_is_rotated(
        self, records_store: AsyncEngine
    ) -> None:
        customer = await sealed(records_store)
        rotated = KeyRing((KeyRing.parse(KeyRing.new_entry("ring-2")).newest, *RING.keys))
        async with AsyncSession(records_store) as session:
            assert await Opener(session, rotated).open(customer.phone) == CUSTOMER.phone


class TestErasure:
    async def test_erasing_clears_the_order_and_destroys_its_key(
        self, records_store: AsyncEngine
    ) -> None:
        customer = await sealed(records_store)
        await write_order(records_store, ORDER, customer)
        other = await sealed(records_store, OTHER_ORDER)
        await write_order(records_store, OTHER_ORDER, other)

        await erase(records_store, ORDER)

        row = await order_row(records_store, ORDER)
        assert (row.customer_name, row.customer_phone) == (None, None)
        assert await destinations(records_store, ORDER) == {
            "customer": None,
            "technician": TECHNICIAN,
        }
        key = await key_row(records_store)
        assert key.wrapped is None
        assert key.erased_at is not None
        assert await opened(records_store, fields(customer)) == [None, None, None, None]
        assert await erased(records_store, customer.name)
        # Another order's personal data is left alone.
        assert await opened(records_store, fields(other)) == CLEAR
        assert (await order_row(records_store, OTHER_ORDER)).customer_name == other.name

    async def test_erasing_twice_erases_the_same(self, records_store: AsyncEngine) -> None:
        customer = await sealed(records_store)
        await write_order(records_store, ORDER, customer)
        await erase(records_store, ORDER)
        erased_at = (await key_row(records_store)).erased_at
        await erase(records_store, ORDER)
        assert (await key_row(records_store)).erased_at == erased_at
        assert (await order_row(records_store, ORDER)).customer_name is None
        assert await opened(records_store, [customer.phone]) == [None]

    async def test_erased_key_is_not_made_again(self, records_store: AsyncEngine) -> None:
        """Sealing for an erased order fails rather than making a new key under its id."""
        await write_order(records_store, ORDER, await sealed(records_store))
        await erase(records_store, ORDER)
        with pytest.raises(PersonalDataUnreadable, match="erased"):
            await sealed(records_store)

    @pytest.mark.parametrize(("first", "last"), [(ORDER, CLAIM), (CLAIM, ORDER)])
    async def test_claim_order_keeps_the_key_until_both_are_erased(
        self, records_store: AsyncEngine, first: str, last: str
    ) -> None:
        customer = await sealed(records_store)
        await write_order(records_store, ORDER, customer)
        await write_order(records_store, CLAIM, customer)

        await erase(records_store, first)

        assert (await order_row(records_store, first)).customer_name is None
        assert (await destinations(records_store, first))["customer"] is None
        assert (await order_row(records_store, last)).customer_name == customer.name
        assert await opened(records_store, fields(customer)) == CLEAR
        assert not await erased(records_store, customer.name)

        await erase(records_store, last)

        assert (await key_row(records_store)).wrapped is None
        assert await opened(records_store, fields(customer)) == [None, None, None, None]
        assert await erased(records_store, customer.phone)


class TestRedact:
    async def test_personal_data_is_redacted_anywhere_in_the_value(self) -> None:
        key = os.urandom(32)
        name, phone = seal("Li Wei", ORDER, key), seal("+86 139 0000 1111", ORDER, key)
        value: dict[str, Any] = {
            "order_id": ORDER,
            "events": [
                {"action": "booked", "detail": name, "seq": 1},
                {"notes": [phone, "called back", 3, None, {"deep": [name]}]},
            ],
            # Recorded before sealing: the same fields in clear.
            "input": {
                "booking": {
                    "customer": {
                        "name": "Li Wei",
                        "phone": "+86 138 0013 8000",
                        "email": None,
                        "address": "88 Century Ave",
                        "region": "pudong",
                        "locale": "zh",
                    }
                }
            },
            "messages": [{"to": {"phone": "+86 1", "email": "a@b.cn", "technician_id": "tech-7"}}],
            "snapshot": {"customer_name": "Li Wei", "customer_phone": "+86 1", "stage": "booked"},
            "technician": {"name": "Wang Fang", "phone": "+86 137 0000 2222"},
        }
        assert await redact(value) == {
            "order_id": ORDER,
            "events": [
                {"action": "booked", "detail": REDACTED, "seq": 1},
                {"notes": [REDACTED, "called back", 3, None, {"deep": [REDACTED]}]},
            ],
            "input": {
                "booking": {
                    "customer": {
                        "name": REDACTED,
                        "phone": REDACTED,
                        "email": None,
                        "address": REDACTED,
                        "region": "pudong",
                        "locale": "zh",
                    }
                }
            },
            "messages": [{"to": {"phone": REDACTED, "email": REDACTED, "technician_id": "tech-7"}}],
            "snapshot": {
                "customer_name": REDACTED,
                "customer_phone": REDACTED,
                "stage": "booked",
            },
            "technician": {"name": "Wang Fang", "phone": "+86 137 0000 2222"},
        }
        assert value["events"][0]["detail"] == name  # the value given is left as it was
