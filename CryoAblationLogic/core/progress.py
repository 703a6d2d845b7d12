"""Progress of long commands on the terminal: a tqdm bar with the elapsed time and an estimate of
the time left, silent when the output is not a terminal (logs, pipes, tests).

Use it as the solver's ``progress(fraction, time_s)`` callback, or count anything with
:meth:`ProgressBar.update_to`::

    with ProgressBar(total=duration_s, description="replay", unit="s") as bar:
        for message in journal:
            ...
            bar.update_to(message.time_s)
"""

from __future__ import annotations

import sys
from typing import TextIO

from tqdm import tqdm

BAR_FORMAT = (
    "{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total:.0f} {unit} [{elapsed} elapsed, {remaining} left]"
)


class ProgressBar:
    """``total`` in ``unit`` (simulated seconds, messages…); ``enabled`` None: only on a terminal."""

    def __init__(
        self,
        total: float,
        description: str,
        unit: str = "s",
        *,
        enabled: bool | None = None,
        stream: TextIO | None = None,
    ):
        stream = stream or sys.stderr
        if enabled is None:
            enabled = bool(getattr(stream, "isatty", lambda: False)())
        self.total = float(total)
        self._bar = tqdm(
            total=self.total,
            desc=description,
            unit=unit,
            file=stream,
            disable=not enabled,
            bar_format=BAR_FORMAT,
            dynamic_ncols=True,
            mininterval=0.25,
        )

    @property
    def enabled(self) -> bool:
        return not self._bar.disable

    def update_to(self, done: float) -> None:
        """Set the amount done (in ``unit``); never moves backwards."""
        done = min(float(done), self.total)
        if done > self._bar.n:
            self._bar.update(done - self._bar.n)

    def __call__(self, fraction: float, time_s: float | None = None) -> None:
        """The solver's callback: ``fraction`` of the run done (``time_s`` is not needed)."""
        self.update_to(fraction * self.total)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ProgressBar:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
