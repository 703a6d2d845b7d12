"""Sending a procedure journal's messages again, with their original timing (to Slicer, a test
peer or a second monitor): :func:`resend_journal`.

Rebuilding a message from its record is the journal's business
(:func:`~CryoAblationLogic.live.journal.record_to_message`): the rebuilt message encodes to the
same bytes as the original. Feeding a journal into live mode is :func:`~.mode.feed_journal`;
running one through the panel's interpretation is :func:`~.link_panel.review_journal`.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path

from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import Message
from CryoAblationLogic.live.journal import journal_messages, read_journal

MAX_GAP_S = 3600.0  # a longer pause between two records is a damaged time, not a procedure's


def resend_journal(
    journal_path: str | Path,
    send: Callable[[Message], object],
    speed: float = 1.0,
    direction: str = "in",
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """Send the journaled messages again, spaced as they arrived (``speed`` 2 = twice as fast;
    0 = as fast as possible; a pause is never longer than ``MAX_GAP_S``). Returns how many were
    sent."""
    if not (math.isfinite(speed) and speed >= 0):
        raise InputError("speed", f"must be ≥ 0, got {speed}")
    count = 0
    previous = None
    for arrival_s, message in journal_messages(read_journal(journal_path), direction):
        if previous is not None and speed > 0:
            sleep(min(MAX_GAP_S, max(0.0, (arrival_s - previous) / speed)))
        previous = arrival_s
        send(message)
        count += 1
    return count
