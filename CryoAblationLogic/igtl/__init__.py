"""OpenIGTLink link without Slicer: codec (header v1/v2, CRC-64, typed messages) and transport
(threaded client and server handing messages to the caller's thread through queues).

No Slicer or Qt imports here: the module's live mode polls :class:`Inbox` from a timer.
"""

from CryoAblationLogic.igtl.codec import (
    DEFAULT_MAX_BODY_SIZE,
    HEADER_SIZE,
    ByteBudget,
    Header,
    StreamReader,
    body_limit,
    decode,
    encode,
    parse_header,
)
from CryoAblationLogic.igtl.crc64 import crc64
from CryoAblationLogic.igtl.errors import CrcError, FramingError, MessageTooLarge, ProtocolError
from CryoAblationLogic.igtl.inbox import Inbox, LinkEvent, Received
from CryoAblationLogic.igtl.messages import (
    STATUS_CODES,
    CapabilityMessage,
    ImageMessage,
    Message,
    NdArrayMessage,
    PointEntry,
    PointMessage,
    PositionMessage,
    QueryMessage,
    RawMessage,
    SensorMessage,
    StatusMessage,
    StringMessage,
    TrackingDataMessage,
    TrackingElement,
    TransformMessage,
    timestamp_from_seconds,
    timestamp_to_seconds,
)
from CryoAblationLogic.igtl.transport import DEFAULT_PORT, Client, Server

__all__ = [
    "DEFAULT_MAX_BODY_SIZE",
    "DEFAULT_PORT",
    "HEADER_SIZE",
    "STATUS_CODES",
    "ByteBudget",
    "CapabilityMessage",
    "Client",
    "CrcError",
    "FramingError",
    "Header",
    "ImageMessage",
    "Inbox",
    "LinkEvent",
    "Message",
    "MessageTooLarge",
    "NdArrayMessage",
    "PointEntry",
    "PointMessage",
    "PositionMessage",
    "ProtocolError",
    "QueryMessage",
    "RawMessage",
    "Received",
    "SensorMessage",
    "Server",
    "StatusMessage",
    "StreamReader",
    "StringMessage",
    "TrackingDataMessage",
    "TrackingElement",
    "TransformMessage",
    "body_limit",
    "crc64",
    "decode",
    "encode",
    "parse_header",
    "timestamp_from_seconds",
    "timestamp_to_seconds",
]
