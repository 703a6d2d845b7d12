"""A corrector whose ensemble may become ready after the freeze began (live mode in the panel).

The panel's live mode starts its links at once and prepares the correction's ensemble beside them
(``scene/live_process.py``), so images may be observed before the ensemble is ready. Those are
skipped and counted, and the count is journaled (the live note ``correction_ready`` with
``images_skipped``), so that a replay (:func:`replay_corrector`, also ``cryoablation replay
--correct``) skips the same images and reproduces the correction exactly. Slicer-free: the CLI
uses it too.
"""

from __future__ import annotations

from pathlib import Path

from CryoAblationLogic.live.journal import read_journal

READY_NOTE = "correction_ready"  # journal note: the ensemble was ready, after this many skipped images


class GatedCorrector:
    """An :class:`~CryoAblationLogic.analysis.ice_correction.IceCorrector` that may become ready
    after the freeze began. Until :meth:`install` gives it the prepared corrector, each observed
    image is skipped (counted in :attr:`skipped`); after, every image goes to it. ``skip``: in a
    replay, the number of images the live session skipped (its journal's ``correction_ready``
    note), so that the replay corrects from the same image on. The console's states go to the
    planned protocol's check from the start (no ensemble needed for that)."""

    def __init__(self, planner, skip: int | None = None):
        self.planner = planner  # the IceCorrector, prepared or not: its console_state needs no ensemble
        self.corrector = None
        self.skipped = 0
        self.first_time_s: float | None = None  # the first image it corrected from
        self._skip = skip

    @property
    def ready(self) -> bool:
        return self.corrector is not None

    @property
    def departures(self) -> list[str]:
        return list(self.planner.departures)

    def install(self, corrector) -> None:
        departures = list(self.planner.departures)
        self.corrector = self.planner = corrector
        self.corrector.departures = departures  # what the console did while the ensemble ran

    def console_state(self, time_s, states):
        return self.planner.console_state(time_s, states)

    def update(self, time_s, observation):
        if self.corrector is None or (self._skip is not None and self.skipped < self._skip):
            self.skipped += 1
            return None
        if self.first_time_s is None:
            self.first_time_s = float(time_s)
        return self.corrector.update(time_s, observation)


def images_skipped(journal_path) -> int:
    """The images a live session observed before its ensemble was ready (0 without the note)."""
    for record in read_journal(Path(journal_path)).records:
        if record["kind"] == "live" and record.get("note") == READY_NOTE:
            return int(record["detail"].get("images_skipped", 0))
    return 0


def replay_corrector(journal_path, corrector) -> GatedCorrector:
    """``corrector`` (prepared as the live session's: same ensemble size) for
    ``replay_procedure(journal, corrector=...)``: it skips the images that the live session
    observed before its ensemble was ready, as the journal's ``correction_ready`` note says."""
    gated = GatedCorrector(corrector, skip=images_skipped(journal_path))
    gated.corrector = corrector
    return gated
