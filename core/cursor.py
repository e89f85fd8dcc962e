"""The keyset cursor codec every list pages with: a cursor is the base64url JSON of where a page
ended (the sort key of its last item), and a cursor that comes back is checked against the
key's type, so a list only ever continues from a position it could have given out."""

import base64
import binascii
from typing import Generic, TypeVar

from pydantic import TypeAdapter

PositionT = TypeVar("PositionT")


class BadCursor(ValueError):
    """Not a cursor this list gave out: not base64url, not JSON, or not the list's sort key."""


class KeysetCursor(Generic[PositionT]):
    """Encodes a list's sort key as an opaque cursor and decodes it back, or refuses it."""

    def __init__(self, position: type[PositionT]) -> None:
        self._position = TypeAdapter(position)

    def encode(self, position: PositionT) -> str:
        return base64.urlsafe_b64encode(self._position.dump_json(position)).decode().rstrip("=")

    def decode(self, cursor: str) -> PositionT:
        """The position `cursor` names; padded and unpadded cursors alike."""
        try:
            raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
            return self._position.validate_json(raw)
        except (ValueError, binascii.Error):  # pydantic's ValidationError is a ValueError
            raise BadCursor("not a cursor this list gave out") from None
