"""The payload codec: every payload the service writes to the engine is encrypted (AES-256-GCM).

The key ring is REPAIRFLOW_PAYLOAD_KEYS: `id:base64key` pairs, newest first, separated by commas
or whitespace. New payloads use the newest key and name its id in their metadata, so a payload
written under an older key decodes for as long as that key stays in the ring: to rotate, put the
new key first and keep the old ones. Payloads written before the codec existed carry no key id
and decode as they are, so the histories recorded then keep replaying.

Failures are encoded too (`DefaultFailureConverterWithEncodedAttributes`): an error's message and
stack trace travel as an encrypted payload, not as clear text in the history.
"""

import base64
import binascii
import dataclasses
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.converter import (
    DataConverter,
    DefaultFailureConverterWithEncodedAttributes,
    PayloadCodec,
)

ENCODING = b"binary/encrypted"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID_PATTERN = re.compile(r"[A-Za-z0-9._-]{1,64}")


class KeyRingError(ValueError):
    """The key ring's text is not a list of `id:base64key` pairs of 32-byte keys."""


class PayloadKeyMissing(ValueError):
    """A payload names a key the ring does not hold (rotated out, or another ring's)."""


@dataclass(frozen=True)
class KeyRing:
    """Named 32-byte keys, newest first."""

    keys: tuple[tuple[str, bytes], ...]

    @classmethod
    def parse(cls, text: str) -> "KeyRing":
        keys: list[tuple[str, bytes]] = []
        # Errors name an entry by its place, not its id: an entry written key:id would quote
        # the key.
        for place, entry in enumerate(text.replace(",", " ").split(), start=1):
            key_id, colon, encoded = entry.partition(":")
            if not colon or not KEY_ID_PATTERN.fullmatch(key_id):
                raise KeyRingError(
                    f"entry {place} is not id:base64key, the id being 1-64 letters, digits,"
                    " '.', '_' or '-'"
                )
            try:
                key = base64.b64decode(encoded, validate=True)
            except binascii.Error:
                raise KeyRingError(f"entry {place}: the key is not valid base64") from None
            if len(key) != KEY_BYTES:
                raise KeyRingError(f"entry {place}: the key is {len(key)} bytes; AES-256 needs 32")
            if any(key_id == known for known, _ in keys):
                raise KeyRingError(f"entry {place}: key id {key_id!r} appears twice")
            keys.append((key_id, key))
        if not keys:
            raise KeyRingError("holds no key")
        return cls(tuple(keys))

    @staticmethod
    def new_entry(key_id: str) -> str:
        """A fresh `id:base64key` pair, to put in front of the ring."""
        return f"{key_id}:{base64.b64encode(os.urandom(KEY_BYTES)).decode()}"

    @property
    def newest(self) -> tuple[str, bytes]:
        return self.keys[0]

    def key(self, key_id: str) -> bytes | None:
        return dict(self.keys).get(key_id)


class EncryptionCodec(PayloadCodec):
    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self._newest = ring.newest[0]
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(payload) for payload in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(payload) for payload in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        nonce = os.urandom(NONCE_BYTES)
        key_id = self._newest.encode()
        sealed = self._ciphers[self._newest].encrypt(nonce, payload.SerializeToString(), key_id)
        return Payload(metadata={"encoding": ENCODING, KEY_ID: key_id}, data=nonce + sealed)

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload  # written before the codec: clear, as it was recorded
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyMissing(
                f"a payload is encrypted with key {key_id!r}, which REPAIRFLOW_PAYLOAD_KEYS"
                " does not hold"
            )
        nonce, sealed = payload.data[:NONCE_BYTES], payload.data[NONCE_BYTES:]
        try:
            clear = cipher.decrypt(nonce, sealed, key_id.encode())
        except InvalidTag:
            raise ValueError(
                f"a payload encrypted with key {key_id!r} does not decrypt: it was altered, or"
                " the key with that id is not the one it was written with"
            ) from None
        decoded = Payload()
        decoded.ParseFromString(clear)
        return decoded


def data_converter(ring: KeyRing) -> DataConverter:
    """The one data converter: pydantic payloads, encoded failures, encrypted on the way out."""
    return dataclasses.replace(
        pydantic_data_converter,
        payload_codec=EncryptionCodec(ring),
        failure_converter_class=DefaultFailureConverterWithEncodedAttributes,
    )
