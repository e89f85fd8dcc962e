"""Customers' personal data, sealed per order so that destroying one key erases every copy.

At booking the API seals the customer's name, phone, email and address (AES-256-GCM) with a
data key of its own, kept in the records store (`personal_data_keys`) wrapped by the
payload key ring: the store holds no key in clear. The workflow, its history, the archive, the
read model and the outbox only ever hold the sealed text `pd1:<key id>:<base64>`. The workflow
decides nothing on it, so erasing changes no decision and replay stays deterministic. Erasing
destroys the key: every copy, in every history and archive row, is unreadable from then on.

The sealed text is opened only where the clear value is needed: a notification's destination
as it is sent, the order's view for the roles that may see personal data, and the codec
endpoint for those roles. A warranty-claim order keeps its original's sealed values, so the key
is destroyed once the last order holding them is erased.
"""

import asyncio
import base64
import binascii
import os
import re
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import func, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col, select

from core.codec import KEY_BYTES, NONCE_BYTES, KeyRing
from models.notification import Recipient
from models.order import Customer, SealedCustomer
from models.records import NotificationRow, OrderRow, PersonalDataKeyRow

SEALED = re.compile(r"pd1:([A-Za-z0-9-]{1,40}):([A-Za-z0-9_-]+={0,2})")
REDACTED = "[redacted]"
ERASED = "[erased]"
# Where histories recorded before sealing hold personal data in clear, by the object holding it.
CLEAR_FIELDS = {
    "customer": {"name", "phone", "email", "address"},
    "to": {"phone", "email"},
    "snapshot": {"customer_name", "customer_phone"},
}


class PersonalDataUnreadable(ValueError):
    """Sealed text that no key opens: altered, or sealed under another ring."""


def seal(value: str, key_id: str, key: bytes) -> str:
    nonce = os.urandom(NONCE_BYTES)
    sealed = AESGCM(key).encrypt(nonce, value.encode(), key_id.encode())
    return f"pd1:{key_id}:{base64.urlsafe_b64encode(nonce + sealed).decode()}"


def sealed_key_id(value: str | None) -> str | None:
    """The key a sealed value was sealed with; None for anything else (a clear value)."""
    match = SEALED.fullmatch(value) if value else None
    return match.group(1) if match else None


def _open(value: str, key: bytes) -> str:
    match = SEALED.fullmatch(value)
    if match is None:
        return value
    try:
        data = base64.urlsafe_b64decode(match.group(2))
        clear = AESGCM(key).decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], match[1].encode())
    except (binascii.Error, InvalidTag):
        raise PersonalDataUnreadable(f"a value sealed with key {match[1]!r} is altered") from None
    return clear.decode()


def _wrap(key: bytes, key_id: str, ring: KeyRing) -> str:
    ring_id, ring_key = ring.newest
    nonce = os.urandom(NONCE_BYTES)
    wrapped = AESGCM(ring_key).encrypt(nonce, key, f"personal-data:{key_id}".encode())
    return f"{ring_id}:{base64.b64encode(nonce + wrapped).decode()}"


def _unwrap(wrapped: str, key_id: str, ring: KeyRing) -> bytes:
    ring_id, _, data = wrapped.partition(":")
    ring_key = ring.key(ring_id)
    if ring_key is None:
        raise PersonalDataUnreadable(
            f"the personal-data key {key_id!r} is wrapped with payload key {ring_id!r}, which"
            " REPAIRFLOW_PAYLOAD_KEYS does not hold"
        )
    raw = base64.b64decode(data)
    try:
        return AESGCM(ring_key).decrypt(
            raw[:NONCE_BYTES], raw[NONCE_BYTES:], f"personal-data:{key_id}".encode()
        )
    except InvalidTag:
        raise PersonalDataUnreadable(f"the personal-data key {key_id!r} is altered") from None


async def order_key(session: AsyncSession, key_id: str, ring: KeyRing) -> bytes:
    """The order's personal-data key, made on first use and committed at once: it must be kept
    before anything is sealed with it. A booking repeated with the same Idempotency-Key gets the
    key the first call made, so both seal alike."""
    row = await session.get(PersonalDataKeyRow, key_id)
    if row is None:
        key = os.urandom(KEY_BYTES)
        wrapped = _wrap(key, key_id, ring)
        try:
            async with session.begin_nested():  # a lost race rolls back this insert only
                session.add(
                    PersonalDataKeyRow(key_id=key_id, wrapped=wrapped, created_at=datetime.now(UTC))
                )
            await session.commit()
            return key
        except IntegrityError:  # another call made it first: use that one
            row = await session.get(PersonalDataKeyRow, key_id)
    if row is None or row.wrapped is None:
        raise PersonalDataUnreadable(f"the personal data of {key_id} is erased")
    return _unwrap(row.wrapped, key_id, ring)


def seal_customer(customer: Customer, key_id: str, key: bytes) -> SealedCustomer:
    email = seal(customer.email, key_id, key) if customer.email is not None else None
    return SealedCustomer(
        name=seal(customer.name, key_id, key),
        phone=seal(customer.phone, key_id, key),
        email=email,
        address=seal(customer.address, key_id, key),
        region=customer.region,
        locale=customer.locale,
    )


class KeyPool:
    """Personal-data keys made ahead, a batch per write, so that a booking does not wait on the
    records store (on SQLite a write queues behind the worker's). A key belongs to no order until
    it seals one: the sealed text names its key, which is how erasure finds it. Keys made but
    never handed out (the process stopped) seal nothing."""

    def __init__(self, engine: AsyncEngine, ring: KeyRing, batch: int = 32) -> None:
        self._engine = engine
        self._ring = ring
        self._batch = batch
        self._keys: list[tuple[str, bytes]] = []
        self._lock = asyncio.Lock()

    async def take(self) -> tuple[str, bytes]:
        """A key id and its key, committed to the store and handed out once."""
        async with self._lock:
            if not self._keys:
                self._keys = await self._make()
            return self._keys.pop()

    async def _make(self) -> list[tuple[str, bytes]]:
        keys = [(uuid.uuid4().hex, os.urandom(KEY_BYTES)) for _ in range(self._batch)]
        made_at = datetime.now(UTC)
        async with AsyncSession(self._engine) as session, session.begin():
            session.add_all(
                PersonalDataKeyRow(
                    key_id=key_id, wrapped=_wrap(key, key_id, self._ring), created_at=made_at
                )
                for key_id, key in keys
            )
        return keys


class Opener:
    """Opens sealed values, reading each key once. A value whose key is erased opens as None;
    one that is not sealed (an order booked before sealing) is returned as it is."""

    def __init__(self, session: AsyncSession, ring: KeyRing) -> None:
        self.session = session
        self.ring = ring
        self.keys: dict[str, bytes | None] = {}

    async def key(self, key_id: str) -> bytes | None:
        if key_id not in self.keys:
            row = await self.session.get(PersonalDataKeyRow, key_id)
            wrapped = row.wrapped if row is not None else None
            self.keys[key_id] = _unwrap(wrapped, key_id, self.ring) if wrapped else None
        return self.keys[key_id]

    async def open(self, value: str | None) -> str | None:
        key_id = sealed_key_id(value)
        if value is None or key_id is None:
            return value
        key = await self.key(key_id)
        return _open(value, key) if key is not None else None

    async def erased(self, value: str | None) -> bool:
        key_id = sealed_key_id(value)
        return key_id is not None and await self.key(key_id) is None


async def walk_strings(value: Any, change: Callable[[str], Awaitable[str]]) -> Any:
    """A JSON value with every string changed by `change` (keys of objects left alone)."""
    if isinstance(value, str):
        return await change(value)
    if isinstance(value, list):
        return [await walk_strings(item, change) for item in value]
    if isinstance(value, dict):
        return {name: await walk_strings(item, change) for name, item in value.items()}
    return value


async def redact(value: Any) -> Any:
    """A JSON value with the personal data in it replaced by "[redacted]": every sealed string,
    and the fields that held it in clear before sealing."""

    async def hide(text: str) -> str:
        return REDACTED if sealed_key_id(text) else text

    return _redact_clear_fields(await walk_strings(value, hide))


def _redact_clear_fields(value: Any) -> Any:
    if isinstance(value, list):
        return [_redact_clear_fields(item) for item in value]
    if not isinstance(value, dict):
        return value
    shown = {name: _redact_clear_fields(item) for name, item in value.items()}
    for holder, fields in CLEAR_FIELDS.items():
        if isinstance(held := shown.get(holder), dict):
            shown[holder] = {
                name: REDACTED if name in fields and isinstance(item, str) else item
                for name, item in held.items()
            }
    return shown


async def erase_order(session: AsyncSession, order_id: str) -> None:
    """Erase the order's personal data from the records store, in one transaction: the read
    model's contact columns and the customer's message destinations; then the personal-data
    keys they were sealed with, unless another order still holds values sealed with one (a
    warranty claim's order keeps its original's). Erasing twice erases the same."""
    async with session.begin():
        row = await session.get(OrderRow, order_id, with_for_update=True)
        held = [row.customer_name, row.customer_phone] if row is not None else []
        destinations = await session.scalars(
            select(NotificationRow.destination).where(
                col(NotificationRow.order_id) == order_id,
                col(NotificationRow.recipient) == Recipient.CUSTOMER,
            )
        )
        key_ids = {key_id for value in [*held, *destinations] if (key_id := sealed_key_id(value))}
        await session.execute(
            update(OrderRow)
            .where(col(OrderRow.order_id) == order_id)
            .values(customer_name=None, customer_phone=None)
        )
        await session.execute(
            update(NotificationRow)
            .where(
                col(NotificationRow.order_id) == order_id,
                col(NotificationRow.recipient) == Recipient.CUSTOMER,
            )
            .values(destination=None)
        )
        for key_id in key_ids:
            others = await session.scalar(
                select(func.count())
                .select_from(OrderRow)
                .where(col(OrderRow.customer_name).startswith(f"pd1:{key_id}:"))
            )
            if not others:
                await session.execute(
                    update(PersonalDataKeyRow)
                    .where(col(PersonalDataKeyRow.key_id) == key_id)
                    .values(wrapped=None, erased_at=datetime.now(UTC))
                )
