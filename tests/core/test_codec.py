"""The payload codec (core/codec.py): everything the service hands the engine is encrypted with
the newest key of REPAIRFLOW_PAYLOAD_KEYS and read back with any key still in the ring."""

import base64
from decimal import Decimal

import pytest
from pydantic import ValidationError
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.converter import DataConverter
from temporalio.exceptions import ApplicationError

from core.codec import (
    EncryptionCodec,
    KeyRing,
    KeyRingError,
    PayloadKeyMissing,
    data_converter,
)
from core.settings import Settings, load_settings
from models.order import Customer, RecordInput, Stage
from tests.factories import create_customer, create_record_input

PHONE = "+86 139 0000 1111"
KEY_1 = base64.b64encode(bytes(range(32))).decode()
KEY_2 = base64.b64encode(bytes(range(100, 132))).decode()
SHORT_KEY = base64.b64encode(bytes(range(16))).decode()


def converter(text: str) -> DataConverter:
    return data_converter(KeyRing.parse(text))


async def encode_one(conv: DataConverter, value: object) -> Payload:
    [payload] = await conv.encode([value])
    return payload


class TestRoundTrip:
    async def test_pydantic_models_and_plain_values_come_back(self) -> None:
        """What the workflows and activities pass decodes to the same values and types."""
        conv = converter(f"k1:{KEY_1}")
        record = create_record_input(3, Stage.BOOKED, total=Decimal("120.50"))
        values: list[object] = [create_customer(), record, "RF261120-ABC123", 42, {"a": [1]}, None]
        payloads = await conv.encode(values)
        decoded = await conv.decode(payloads, [Customer, RecordInput, str, int, dict, type(None)])
        assert decoded == values
        assert isinstance(decoded[1], RecordInput)
        assert decoded[1].snapshot.total == Decimal("120.50")

    async def test_payload_holds_neither_the_clear_text_nor_the_key(self) -> None:
        """The engine, its history and its archive see only ciphertext and a key id."""
        payload = await encode_one(converter(f"k1:{KEY_1}"), create_customer(phone=PHONE))
        stored = payload.SerializeToString()
        for clear in (PHONE, "Li Wei", "88 Century Ave", "li.wei@example.com"):
            assert clear.encode() not in stored
        assert bytes(range(32)) not in stored
        assert KEY_1.encode() not in stored

    async def test_metadata_names_the_newest_key(self) -> None:
        payload = await encode_one(converter(f"k2:{KEY_2}, k1:{KEY_1}"), "hello")
        assert dict(payload.metadata) == {
            "encoding": b"binary/encrypted",
            "encryption-key-id": b"k2",
        }

    async def test_same_value_encrypts_differently_each_time(self) -> None:
        """A fresh nonce per payload: equal values do not show as equal ciphertexts."""
        conv = converter(f"k1:{KEY_1}")
        first, second = await conv.encode([PHONE, PHONE])
        assert first.data != second.data


class TestRotation:
    async def test_old_payloads_decode_after_a_new_key_is_put_first(self) -> None:
        old = await encode_one(converter(f"k1:{KEY_1}"), PHONE)
        rotated = converter(f"k2:{KEY_2},k1:{KEY_1}")
        assert await rotated.decode([old], [str]) == [PHONE]
        new = await encode_one(rotated, PHONE)
        assert new.metadata["encryption-key-id"] == b"k2"
        assert await rotated.decode([new], [str]) == [PHONE]

    async def test_ring_without_the_payloads_key_names_it(self) -> None:
        old = await encode_one(converter(f"k1:{KEY_1}"), PHONE)
        with pytest.raises(PayloadKeyMissing, match="'k1'") as missing:
            await converter(f"k2:{KEY_2}").decode([old], [str])
        assert isinstance(missing.value, ValueError)
        assert KEY_2 not in str(missing.value)

    async def test_key_id_is_bound_to_the_ciphertext(self) -> None:
        """Relabelling a payload with another key id of the ring does not decrypt it."""
        ring = converter(f"k2:{KEY_1},k1:{KEY_1}")  # even under the very same key
        payload = await encode_one(ring, PHONE)
        payload.metadata["encryption-key-id"] = b"k1"
        with pytest.raises(ValueError, match="altered"):
            await ring.decode([payload], [str])


class TestTampering:
    @pytest.mark.parametrize("position", [0, 20, -1], ids=["nonce", "body", "tag"])
    async def test_flipped_byte_is_refused(self, position: int) -> None:
        conv = converter(f"k1:{KEY_1}")
        payload = await encode_one(conv, PHONE)
        data = bytearray(payload.data)
        data[position] ^= 0x01
        payload.data = bytes(data)
        with pytest.raises(ValueError, match=r"'k1'.*altered"):
            await conv.decode([payload], [str])

    async def test_payload_recorded_before_the_codec_decodes_unchanged(self) -> None:
        """Histories written in clear (json/plain, no key id) keep replaying."""
        plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"phone":"+86 1"}')
        codec = EncryptionCodec(KeyRing.parse(f"k1:{KEY_1}"))
        assert await codec.decode([plain]) == [plain]
        assert await converter(f"k1:{KEY_1}").decode([plain], [dict]) == [{"phone": "+86 1"}]


class TestFailures:
    async def test_error_message_is_encrypted_and_comes_back(self) -> None:
        """An error quoting a customer's phone is not kept in clear in the history."""
        conv = converter(f"k1:{KEY_1}")
        failure = Failure()
        try:
            raise ApplicationError(f"could not reach {PHONE}", type="NotificationRefused")
        except ApplicationError as error:
            await conv.encode_failure(error, failure)
        assert PHONE.encode() not in failure.SerializeToString()
        assert PHONE not in failure.message
        assert failure.encoded_attributes.metadata["encryption-key-id"] == b"k1"
        decoded = await conv.decode_failure(failure)
        assert isinstance(decoded, ApplicationError)
        assert decoded.message == f"could not reach {PHONE}"
        assert decoded.type == "NotificationRefused"


class TestKeyRing:
    def test_pairs_are_split_on_commas_and_whitespace_newest_first(self) -> None:
        ring = KeyRing.parse(f" k2:{KEY_2},\n\tk1:{KEY_1} , ")
        assert [key_id for key_id, _ in ring.keys] == ["k2", "k1"]
        assert ring.newest == ("k2", bytes(range(100, 132)))
        assert ring.key("k1") == bytes(range(32))
        assert ring.key("k3") is None

    def test_new_entry_is_a_fresh_usable_pair(self) -> None:
        first, second = KeyRing.new_entry("2026-12.a_1"), KeyRing.new_entry("2026-12.a_1")
        assert first != second
        ring = KeyRing.parse(f"{first} k1:{KEY_1}")
        assert ring.newest[0] == "2026-12.a_1"
        assert len(ring.newest[1]) == 32

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (f"k1:{KEY_1[:-2]}*=", "entry 1: the key is not valid base64"),
            (f"k1:{SHORT_KEY}", "entry 1: the key is 16 bytes; AES-256 needs 32"),
            (f"k1:{KEY_1} k1:{KEY_2}", "entry 2: key id 'k1' appears twice"),
            ("", "holds no key"),
            (" , \n", "holds no key"),
            (f"k/1:{KEY_1}", "entry 1 is not id:base64key"),
            (f":{KEY_1}", "entry 1 is not id:base64key"),
            (f"{'k' * 65}:{KEY_1}", "entry 1 is not id:base64key"),
            (KEY_1, "entry 1 is not id:base64key"),
            (f"{KEY_1}:k1", "entry 1 is not id:base64key"),
        ],
        ids=[
            "bad-base64",
            "16-byte-key",
            "duplicate-id",
            "empty",
            "only-separators",
            "bad-id",
            "no-id",
            "long-id",
            "key-without-id",
            "pair-reversed",
        ],
    )
    def test_bad_ring_is_refused_without_showing_a_key(self, text: str, message: str) -> None:
        with pytest.raises(KeyRingError, match=message) as refused:
            KeyRing.parse(text)
        assert isinstance(refused.value, ValueError)
        for key in (KEY_1, KEY_2, SHORT_KEY):
            assert key[:12] not in str(refused.value)


class TestSettings:
    def test_bad_ring_is_refused_naming_the_setting_not_the_key(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A mistyped new key in front of the key in use: the error, as a traceback prints it
        (e.g. `alembic upgrade head`, which reads Settings() directly), shows neither key."""
        monkeypatch.setenv("REPAIRFLOW_PAYLOAD_KEYS", f"k2:{SHORT_KEY} k1:{KEY_1}")
        with pytest.raises(ValidationError) as refused:
            Settings()
        [error] = refused.value.errors()
        assert error["loc"] == ("payload_keys",)
        assert "entry 1: the key is 16 bytes" in error["msg"]
        printed = str(refused.value)
        leak = "the ValidationError quotes the ring as its input_value"
        assert SHORT_KEY[:12] not in printed, leak
        assert KEY_1[-12:] not in printed, leak

    def test_key_ring_is_read_from_the_setting(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REPAIRFLOW_PAYLOAD_KEYS", f"k2:{KEY_2} k1:{KEY_1}")
        settings = Settings()
        assert settings.key_ring == KeyRing.parse(f"k2:{KEY_2},k1:{KEY_1}")
        assert KEY_2 not in repr(settings)

    def test_process_with_a_bad_ring_does_not_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("REPAIRFLOW_PAYLOAD_KEYS", f"k1:{KEY_1[:-2]}*=")
        with pytest.raises(SystemExit) as stopped:
            load_settings()
        error = str(stopped.value)
        assert error.startswith("repairflow cannot start: REPAIRFLOW_PAYLOAD_KEYS:")
        assert "entry 1: the key is not valid base64" in error
        assert KEY_1[:12] not in error

    def test_process_without_a_ring_does_not_start(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("REPAIRFLOW_PAYLOAD_KEYS")
        with pytest.raises(KeyRingError, match="REPAIRFLOW_PAYLOAD_KEYS is not set"):
            Settings().key_ring  # noqa: B018 - the property is what raises
        with pytest.raises(SystemExit) as stopped:
            load_settings()
        assert str(stopped.value).startswith(
            "repairflow cannot start: REPAIRFLOW_PAYLOAD_KEYS is not set"
        )
