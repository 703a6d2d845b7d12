"""Errors of the OpenIGTLink layer. All are :class:`~CryoAblationLogic.core.errors.InputError`s naming the
offending field, so a malformed message reads like any other bad input."""

from __future__ import annotations

from CryoAblationLogic.core.errors import InputError


class ProtocolError(InputError):
    """A message that breaks the OpenIGTLink protocol: bad header field, wrong body size, bad value.

    The stream can go on after it (the header told how many bytes to skip) unless the error is a
    :class:`FramingError`.
    """


class CrcError(ProtocolError):
    """The body's CRC-64 does not match the header (the message is dropped)."""


class FramingError(ProtocolError):
    """The header itself is unusable (garbage, unknown version, body larger than allowed): the
    receiver cannot find the next message boundary and must drop the connection."""


class MessageTooLarge(FramingError):
    """BODY_SIZE exceeds the receiver's limit (refused before any byte of the body is buffered)."""
