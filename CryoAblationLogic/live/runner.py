"""A monitoring run: the live links, the journal and a :class:`~.mode.LiveSession`, stepped by a
loop (``cryoablation monitor``), and the replay of a finished one. In a Slicer scene live mode runs
through :mod:`.scene_link` (same :func:`open_session`, its own sources and scene nodes).

    monitor = start_monitor_run(case, journal_path, [Endpoint("client", "127.0.0.1", 18944)])
    while running: monitor.step(); time.sleep(0.05)
    monitor.close()                       # stop the links, feed what is left, bring the solver to the clock
    write_live_results(monitor.session, out_dir)

The case is saved beside the journal (``<procedure>_case/case.cryo.json``) and loaded back before
the session starts, so that live mode and :func:`replay_procedure` work from the same case file.
Opening an existing journal resumes it: its messages are fed again first (no network), then the
session goes on live, appending to the same journal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.inbox import Received
from CryoAblationLogic.io.case_file import load_case, save_case
from CryoAblationLogic.live.journal import Journal, check_procedure_name, read_journal
from CryoAblationLogic.live.late_correction import GatedCorrector, replay_centre, replay_corrector
from CryoAblationLogic.live.link import Endpoint, LiveLink
from CryoAblationLogic.live.mode import LiveSession, feed_journal, session_for_journal

CASE_FOLDER_SUFFIX = "_case"
LIVE_COALESCED = frozenset({"IMAGE"})  # frames may be coalesced for the display; poses never
# The monitor segments the ice in every frame, as a replay of its journal does: nothing coalesced.
MONITOR_COALESCED: frozenset[str] = frozenset()


def journal_location(path: str | Path, key: str = "--journal") -> tuple[Path, str]:
    """(folder, procedure name) of a journal path ``<folder>/<procedure>.jsonl``; a bad path
    raises InputError naming ``key`` (the option or the field it came from)."""
    text = str(path).strip()
    if not text:
        raise InputError(key, "choose a journal file (…/<procedure>.jsonl)")
    path = Path(text).expanduser()
    if path.suffix != ".jsonl":
        raise InputError(key, f"{path}: a journal is a .jsonl file")
    check_procedure_name(path.stem, key)
    return path.parent, path.stem


def case_path_for(journal_path: Path) -> Path:
    folder, procedure = journal_location(journal_path)
    return folder / f"{procedure}{CASE_FOLDER_SUFFIX}" / "case.cryo.json"


@dataclass
class MonitorRun:
    link: LiveLink
    journal: Journal
    session: LiveSession
    resumed_messages: int = 0
    silence_s: float | None = 1.0  # None: the clock follows the console only
    closed: bool = False
    link_events: list = field(default_factory=list)  # (source, LinkEvent) since the caller last looked

    def step(self, max_items: int = 1000, follow_wall_clock: bool = True) -> int:
        """Feed what arrived; move the clock on if the console is silent. Returns messages fed."""
        fed = 0
        for source, item, events in self.link.poll_received(max_items):
            if isinstance(item, Received):
                self.session.feed(item.message, item.arrival_time_s, events, link=source)
                fed += 1
            elif len(self.link_events) < 1000:  # kept for the caller to show; bounded if nobody looks
                self.link_events.append((source, item))
        if fed == 0 and follow_wall_clock and self.silence_s:
            self.session.follow_wall_clock(self.silence_s)
        return fed

    def close(self) -> None:
        """Stop the links, feed everything still waiting, bring the solver to the clock."""
        if self.closed:
            return
        self.link.stop()
        while self.step(100_000, follow_wall_clock=False):
            pass
        self.session.finish()
        self.journal.record_note("stop", {"time_s": self.session.clock_s})
        self.journal.close()
        self.closed = True


def open_session(
    case,
    journal_path: str | Path,
    *,
    update_interval_s: float = 1.0,
    on_update=None,
    fsync: bool = False,
    compress_images: bool = False,
    track_ice: bool = True,
    corrector=None,
) -> tuple[Journal, LiveSession, int]:
    """The journal and the live session of a procedure: a new journal with ``case`` saved beside
    it, or an existing one resumed (its case and settings, its messages fed again). Returns
    (journal, session, messages fed again). ``fsync``: every journal record forced to disk
    (survives a power cut, not only a crash of this process); ``compress_images``: gzip the
    journal's NRRD frames; ``track_ice``: the ice segmented in every image (:mod:`.ice_tracking`;
    a resumed journal keeps its own setting); ``corrector``: told of each observed image
    (``update(time_s, observation)``)."""

    journal_path = Path(journal_path)
    folder, procedure = journal_location(journal_path)
    case_file = case_path_for(journal_path)
    if journal_path.exists() and journal_path.stat().st_size > 0:
        contents = read_journal(journal_path)
        session = session_for_journal(load_case(case_file), contents, on_update, corrector=corrector)
        resumed = feed_journal(session, contents)
        journal = Journal(folder, procedure, fsync=fsync, compress_images=compress_images)
        session.journal = journal
        journal.record_note("resume", {"time_s": session.clock_s, "messages": resumed})
        return journal, session, resumed
    save_case(case, case_file, labelmap_filename="labels.nrrd")
    journal = Journal(folder, procedure, fsync=fsync, compress_images=compress_images)
    journal.record_note("case", {"file": str(case_file.relative_to(folder))})
    session = LiveSession(
        load_case(case_file),
        update_interval_s=update_interval_s,
        journal=journal,
        on_update=on_update,
        track_ice=track_ice,
        corrector=corrector,
    )
    return journal, session, 0


def start_monitor_run(
    case,
    journal_path: str | Path,
    scanner: Endpoint | None,
    console: Endpoint | None,
    *,
    update_interval_s: float = 1.0,
    on_update=None,
    silence_s: float | None = 1.0,
    fsync: bool = False,
    compress_images: bool = False,
    track_ice: bool = True,
    corrector=None,
) -> MonitorRun:
    """Open (or resume) the journal and the session (:func:`open_session`), start the links."""
    journal, session, resumed = open_session(
        case,
        journal_path,
        update_interval_s=update_interval_s,
        on_update=on_update,
        fsync=fsync,
        compress_images=compress_images,
        track_ice=track_ice,
        corrector=corrector,
    )
    link = start_links(journal, scanner, console, coalesce=MONITOR_COALESCED)
    return MonitorRun(link, journal, session, resumed, silence_s)


def start_links(
    journal: Journal | None, scanner: Endpoint | None, console: Endpoint | None, **options
) -> LiveLink:
    """Start the scanner and console links, journaling into ``journal`` (None: nothing recorded);
    if they cannot start, nothing is left open (links stopped, journal closed). ``options`` go to
    :class:`~CryoAblationLogic.live.link.LiveLink`. Live mode and plain monitoring both start here."""
    link = LiveLink(journal, scanner=scanner, console=console, **options)
    try:
        link.start()
    except Exception:
        link.stop()
        if journal is not None:
            journal.close()
        raise
    return link


def replay_procedure(journal_path: str | Path, on_update=None, corrector=None) -> tuple[LiveSession, bool]:
    """Run a journaled procedure through live mode again (same case, same settings, the ice
    tracked if it was, ``corrector`` told of each observed image); returns the session, brought to
    the procedure clock, and whether the journal's last line was cut off."""

    journal_path = Path(journal_path)
    contents = read_journal(journal_path)
    if not any(r["kind"] == "live" and r["note"] == "start" for r in contents.records):
        raise InputError("journal", "has no live-mode start record (not written by a monitor session)")
    case_file = case_path_for(journal_path)
    if not case_file.is_file():
        raise InputError(str(case_file), "the case file saved beside the journal is missing")
    session = session_for_journal(load_case(case_file), contents, on_update, corrector=corrector)
    feed_journal(session, contents)
    session.finish()
    return session, contents.truncated_tail


@dataclass
class ReplayedProcedure:
    """A live-mode journal replayed, as a panel shows it: what ``link_panel.live_panel`` reads of
    the session (``samples``, ``states``, ``notes``), its prediction (``result()``) and how many
    console messages it took. Small and picklable: the replay runs in a worker process."""

    prediction: object  # SimulationResult
    console_messages: int
    samples: list
    states: dict
    notes: list
    truncated_tail: bool  # the journal's last line was cut off (a crash mid-write) and skipped

    def result(self):
        return self.prediction


def replay_for_panel(journal_path: str | Path) -> ReplayedProcedure:
    """:func:`replay_procedure`, kept as :class:`ReplayedProcedure` (the solver stays behind)."""
    session, truncated = replay_procedure(journal_path)
    return ReplayedProcedure(
        session.result(),
        session.console_messages,
        list(session.samples),
        dict(session.states),
        list(session.notes),
        truncated,
    )


def journal_summary(journal_path: str | Path) -> dict:
    """Counts of a journal's records by kind and message type (for reports and tests)."""
    contents = read_journal(journal_path)
    counts: dict[str, int] = {}
    for record in contents.records:
        key = (
            record["kind"]
            if record["kind"] != "message"
            else f"{record['direction']}:{record['message_type']}"
        )
        counts[key] = counts.get(key, 0) + 1
    return {"records": len(contents.records), "truncated_tail": contents.truncated_tail, "counts": counts}


def prepare_replay_correction(
    journal_path: str | Path, members: int = CorrectionSettings.members, log=None
) -> GatedCorrector | None:
    """The corrector for ``replay_procedure(journal, corrector=...)`` that reproduces the live
    session's correction: its ensemble prepared on the probe poses (and with the placement prior)
    the live one was drawn around, the images it skipped skipped and those it kept while the
    ensemble was prepared kept (the journal's notes, :func:`~.late_correction.replay_centre`);
    ``members`` where the journal does not say. None when the live session never had a ready
    ensemble."""
    centre = replay_centre(journal_path, load_case(case_path_for(Path(journal_path))))
    if centre is None:
        return None
    case, placement, journaled_members, skipped = centre
    corrector = prepare_corrector(case, journaled_members or members, log=log, placement=placement)
    return replay_corrector(journal_path, corrector, skip=skipped)


def prepare_corrector(
    case, members: int = CorrectionSettings.members, log=None, placement: str = "planned"
) -> IceCorrector:
    """The ice corrector of ``case`` (``analysis/ice_correction.py``) with its ensemble run now:
    ``members`` solver runs of the planned protocol drawn from the priors (about 1.5 min for the
    demo plan on 2 cores), before the first freeze. Deterministic: a replay that prepares it with
    the same ``members`` reproduces the correction exactly. ``log(text)``: progress lines;
    ``placement``: "planned", or "reported" when the case's probes are the console's poses."""
    settings = CorrectionSettings(members=members)
    settings.check()
    corrector = IceCorrector(case, settings, placement)
    step = max(1, members // 4)

    def progress(done: int, total: int) -> None:
        if log is not None and (done % step == 0 or done == total):
            log(f"  correction ensemble: {done}/{total} solver runs")

    corrector.prepare(progress=progress)
    return corrector
