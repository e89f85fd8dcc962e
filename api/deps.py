"""What routes declare by type: the caller, the engine, the records store, the order."""

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

import jwt
import structlog
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncSession
from temporalio.client import Client, WorkflowHandle

from api.errors import Forbidden, NotFound, Unauthorized, Unavailable
from api.orders import read_order
from core.archive import load_final_order
from core.personal import KeyPool, Opener
from core.settings import Settings
from core.tokens import KeysUnavailable, decode_token
from models.actions import ACTIONS, Action
from models.order import (
    ORDER_ID_PATTERN,
    Actor,
    Order,
    OrderSource,
    Role,
    order_workflow_id,
    owns_order,
)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: committed when the route returns, rolled back if it raises. What
    must be kept before the engine is told (an Idempotency-Key, an order's personal-data key)
    is committed on the way, and the session goes on in a new transaction. (Ended before the
    response is sent, see SessionDep: a commit that fails is the caller's 503, never a 2xx.)"""
    async with AsyncSession(request.app.state.engine, expire_on_commit=False) as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await session.commit()


def get_key_pool(request: Request) -> KeyPool:
    pool: KeyPool = request.app.state.key_pool
    return pool


SettingsDep = Annotated[Settings, Depends(get_settings)]
KeyPoolDep = Annotated[KeyPool, Depends(get_key_pool)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


def get_opener(session: SessionDep, settings: SettingsDep) -> Opener:
    return Opener(session, settings.key_ring)


OpenerDep = Annotated[Opener, Depends(get_opener)]

log = structlog.get_logger("api")

bearer = HTTPBearer(auto_error=False, description="JWT from the identity provider")


def authenticate(
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Actor:
    if credentials is None:
        raise Unauthorized("an Authorization: Bearer token is required")
    secret = settings.auth_secret.get_secret_value() if settings.auth_secret else None
    try:
        claims = decode_token(
            credentials.credentials,
            secret=secret,
            jwks_url=settings.auth_jwks_url,
            link_secret=settings.link_secret,
            allow_hs256=settings.auth_allow_hs256,
        )
        caller = Actor(
            subject=claims["sub"],
            role=claims.get("role"),
            technician_id=claims.get("technician_id"),
            order_id=claims.get("order_id"),
        )
    except (jwt.InvalidTokenError, ValidationError) as error:
        raise Unauthorized("the token is not valid") from error
    except KeysUnavailable as error:
        log.error("identity provider keys unavailable", error_type=type(error).__name__)
        raise Unavailable("the identity provider cannot be reached to check the token") from None
    if caller.role == Role.TECHNICIAN and not caller.technician_id:
        raise Unauthorized("a technician token needs a technician_id claim")
    if caller.role == Role.CUSTOMER and not caller.order_id:
        raise Unauthorized("a customer token needs an order_id claim")
    structlog.contextvars.bind_contextvars(caller_role=str(caller.role))
    return caller


CallerDep = Annotated[Actor, Depends(authenticate)]


def role(*allowed: Role) -> Callable[[Actor], Actor]:
    names = ", ".join(allowed)

    def caller_with_role(caller: CallerDep) -> Actor:
        if caller.role not in allowed:
            raise Forbidden(f"role {caller.role} may not do this (allowed: {names})")
        return caller

    return caller_with_role


def may(action: Action) -> Callable[[Actor], Actor]:
    """The caller, if their role may take this order action (models.actions)."""
    return role(*sorted(ACTIONS[action].roles))


def order_id_in_path(order_id: str) -> str:
    """The path's order number, if it is one (else 404), bound to every log line after."""
    if not ORDER_ID_PATTERN.match(order_id):
        raise NotFound("no such order")
    structlog.contextvars.bind_contextvars(order_id=order_id)
    return order_id


OrderId = Annotated[str, Depends(order_id_in_path)]


def order_handle(
    order_id: OrderId, caller: CallerDep, temporal: TemporalDep
) -> WorkflowHandle[object, object]:
    """The order's workflow, once the caller is known to be allowed near it."""
    if caller.role == Role.CUSTOMER and not owns_order(caller, order_id):
        raise Forbidden("this token belongs to another order")
    return temporal.get_workflow_handle(order_workflow_id(order_id))


OrderHandle = Annotated[WorkflowHandle[object, object], Depends(order_handle)]


@dataclass(frozen=True)
class FoundOrder:
    order: Order
    source: OrderSource


async def find_order(handle: WorkflowHandle[Any, Any], session: AsyncSession) -> FoundOrder:
    """The order as the workflow holds it, or, once the engine has forgotten a closed order,
    as it was archived."""
    try:
        return FoundOrder(await read_order(handle), OrderSource.ENGINE)
    except NotFound:
        archived = await load_final_order(session, handle.id)
        if archived is None:
            raise
        return FoundOrder(archived, OrderSource.ARCHIVE)


async def visible_order(handle: OrderHandle, caller: CallerDep, session: SessionDep) -> FoundOrder:
    """The order (`find_order`), if the caller may read it."""
    found = await find_order(handle, session)
    order = found.order
    offered = order.offer is not None and order.offer.technician_id == caller.technician_id
    if (
        caller.role == Role.TECHNICIAN
        and order.technician_id != caller.technician_id
        and not offered
    ):
        raise Forbidden("this order is not assigned or offered to this technician")
    return found


VisibleOrder = Annotated[FoundOrder, Depends(visible_order)]
