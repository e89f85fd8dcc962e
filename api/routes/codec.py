"""Temporal's remote codec protocol (`POST /v1/codec/decode`, `/v1/codec/encode`), for the Web UI
and `temporal --codec-endpoint http://.../v1/codec --codec-auth "Bearer <token>"`.

Decoding decrypts the payloads with the key ring. For staff and supervisors, who see customers'
personal data, the sealed fields inside are opened too (those of an erased order read
"[erased]"); for every other role they are redacted. Encoding, which the Web UI uses to send
input, is for staff and supervisors.
"""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends
from google.protobuf.json_format import MessageToDict, ParseDict, ParseError
from temporalio.api.common.v1 import Payload, Payloads

from api.deps import CallerDep, OpenerDep, SettingsDep, role
from api.errors import Unprocessable, problems
from core.codec import EncryptionCodec
from core.personal import ERASED, Opener, PersonalDataUnreadable, redact, walk_strings
from models.order import Actor, Role

router = APIRouter(prefix="/v1/codec", tags=["codec"])

SEES_PERSONAL_DATA = (Role.STAFF, Role.SUPERVISOR)
JSON_ENCODINGS = (b"json/plain", b"json/protobuf")
PAYLOADS_EXAMPLE = {
    "payloads": [{"metadata": {"encoding": "YmluYXJ5L2VuY3J5cHRlZA=="}, "data": ""}]
}
PayloadsBody = Annotated[dict[str, Any], Body(examples=[PAYLOADS_EXAMPLE])]


def read_payloads(body: dict[str, Any]) -> list[Payload]:
    try:
        return list(ParseDict(body, Payloads()).payloads)
    except ParseError as error:
        raise Unprocessable(f"body: not a Payloads message as JSON ({error})") from None


def answer(payloads: list[Payload]) -> dict[str, Any]:
    return MessageToDict(Payloads(payloads=payloads))


async def shown(payload: Payload, caller: Actor, opener: Opener) -> Payload:
    """The payload with the personal data inside opened or redacted, as the caller may see."""
    if payload.metadata.get("encoding") not in JSON_ENCODINGS:
        return payload
    try:
        value = json.loads(payload.data)
    except ValueError:
        return payload

    async def open_or_erased(text: str) -> str:
        try:
            opened = await opener.open(text)
        except PersonalDataUnreadable:
            return ERASED
        return ERASED if opened is None else opened

    if caller.role in SEES_PERSONAL_DATA:
        value = await walk_strings(value, open_or_erased)
    else:
        value = await redact(value)
    return Payload(metadata=payload.metadata, data=json.dumps(value, ensure_ascii=False).encode())


@router.post("/decode", responses=problems(401, 422))
async def decode(
    body: PayloadsBody, caller: CallerDep, opener: OpenerDep, settings: SettingsDep
) -> dict[str, Any]:
    """Payloads as the engine stores them, decrypted; customers' personal data opened for staff
    and supervisors, redacted for the other roles."""
    try:
        decoded = await EncryptionCodec(settings.key_ring).decode(read_payloads(body))
    except ValueError as error:  # a key the ring does not hold, or an altered payload
        raise Unprocessable(str(error)) from None
    return answer([await shown(payload, caller, opener) for payload in decoded])


@router.post("/encode", responses=problems(401, 403, 422))
async def encode(
    body: PayloadsBody,
    settings: SettingsDep,
    _: Annotated[Actor, Depends(role(*SEES_PERSONAL_DATA))],
) -> dict[str, Any]:
    """Payloads encrypted with the newest key, as the service writes them."""
    return answer(await EncryptionCodec(settings.key_ring).encode(read_payloads(body)))
