"""The emulator's cursor codec: the same layout as the real service's opaque cursors.

A cursor is base64 of ``{"o": "-created_at,id", "v": base64(b"d" + int64 created_at + b"i" +
int64 id)}`` (little endian). Decoding yields the ``(-created_at, id)`` sort key of a stream.
"""

from __future__ import annotations

import base64
import binascii
import struct

import msgspec

__all__ = ["CURSOR_ORDER", "CursorError", "decode_cursor", "encode_cursor"]

#: The ordering a cursor encodes, as in the real cursors: newest first, then by id.
CURSOR_ORDER = "-created_at,id"

_CURSOR_POS = struct.Struct("<cqcq")
_encode = msgspec.json.encode
_decode = msgspec.json.decode


class CursorError(ValueError):
    """A ``page[after]``/``page[before]`` value that is not one of our cursors."""


def encode_cursor(created_at: int, activity_id: int) -> str:
    # Same layout as the real service: b"d" + int64 created_at + b"i" + int64 id, little endian.
    pos = _CURSOR_POS.pack(b"d", created_at, b"i", activity_id)
    inner = {"o": CURSOR_ORDER, "v": base64.b64encode(pos).decode()}
    return base64.b64encode(_encode(inner)).decode()


def decode_cursor(cursor: str) -> tuple[int, int]:
    """Return the ``(-created_at, id)`` sort key a cursor points at."""
    try:
        raw = base64.b64decode(cursor.encode() + b"=" * (-len(cursor) % 4), altchars=b"-_")
        inner = _decode(raw)
        if not isinstance(inner, dict) or inner.get("o") != CURSOR_ORDER:
            raise CursorError("unknown cursor ordering")
        value = inner.get("v")
        if not isinstance(value, str):
            raise CursorError("missing cursor position")
        tag_d, created_at, tag_i, activity_id = _CURSOR_POS.unpack(base64.b64decode(value))
    except (binascii.Error, msgspec.DecodeError, struct.error, UnicodeError, ValueError) as exc:
        if isinstance(exc, CursorError):
            raise
        raise CursorError(f"cursor could not be decoded: {cursor!r}") from exc
    if tag_d != b"d" or tag_i != b"i":
        raise CursorError("malformed cursor position")
    return (-created_at, activity_id)
