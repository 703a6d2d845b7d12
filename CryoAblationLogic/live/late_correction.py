"""The correction of a live session: its ensemble prepared beside the session, on the probe poses
the console reports, and ready after the freeze may have begun (CLI monitor and the panel).

**Why the reported poses.** The corrector's ensemble is drawn around a placement with a prior of
how far the probes may lie from it. Drawn around the PLAN with the insertion accuracy (2 mm /
3°), the images made it re-fit tip offsets that the live prediction had already taken in from the
console's poses (seed-7 live run: the −40 °C surface 0.66 mm off the truth corrected against 0.26
mm predicted). So the ensemble is drawn around the poses the console has reported when its
preparation starts, with the tracking accuracy as the placement prior
(``CorrectionSettings.tracking_error_mm``/``_deg``; ``IceCorrector(..., placement="reported")``):

- the preparation starts at once on the plan (a console that never reports poses still gets a
  correction, with the insertion prior) and starts again on the reported placement as soon as
  every probe's pose has been reported, and whenever, before the first freeze, a reported pose
  moves a probe beyond the ensemble's placement prior (the solver follows it then too);
- once freezing has begun nothing is prepared again (a probe frozen into the ice hardly moves,
  and the live prediction keeps its geometry too): a reported pose beyond the prior from the
  ensemble's makes the correction NOT VALID ("P1 reported 1.2 mm / 0.4° from the pose the
  correction's ensemble was drawn around"), as a console departing from the protocol does.

The ensemble runs in a process of its own (:class:`EnsemblePreparation`, :func:`serve_preparations`):
numba holds a process's GIL through each solver run. Images observed before it is ready are kept
(measured, ``IceCorrector.keep``) and assimilated, in order, when it is installed: no image is
lost to the preparation, and a resumed journal (its messages fed again while the ensemble is
prepared anew) corrects from every image it holds. The journal gets a live note
``correction_preparing`` (members, placement, the probes' poses) each time a preparation starts
and ``correction_ready`` (the same, and ``images_kept``) when one is installed, so that a replay
(:func:`replay_centre`, :func:`replay_corrector`, ``cryoablation replay --correct``) prepares on
the same poses, keeps the same images and reproduces the correction exactly. Journals written
before images were kept have ``images_skipped`` instead (those images were not corrected from),
and replay so. Slicer-free.
"""

from __future__ import annotations

import math
import multiprocessing
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from CryoAblationLogic.analysis.ice_correction import CorrectionSettings, IceCorrector
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.live.journal import read_journal

READY_NOTE = "correction_ready"  # journal note: the ensemble was ready, taking the images kept meanwhile
PREPARING_NOTE = "correction_preparing"  # journal note: a preparation started, on these poses
# journal notes of a re-centring: asked for (the posterior's centre, full precision), and installed
RECENTRING_NOTE = "correction_recentring"
RECENTRED_NOTE = "correction_recentred"


class GatedCorrector:
    """An :class:`~CryoAblationLogic.analysis.ice_correction.IceCorrector` that may become ready
    after the freeze began. Until :meth:`install` gives it the prepared corrector, each observed
    image is kept (measured, counted in :attr:`kept`) and the installed ensemble assimilates them
    all; after, every image goes to it (:attr:`skipped`: images a replay skips as a journal
    written before images were kept says). ``skip``/``keep``: in a replay, the images the live
    session skipped and kept (its journal's ``correction_ready`` note), so that the replay
    corrects as it did. The console's states go to the planned protocol's check from the start
    (no ensemble needed for that).

    ``request(centre)``: (re)start preparing an ensemble drawn around ``centre`` (an unprepared
    IceCorrector: its case's probes and placement); None (a replay): the ensemble is given.
    The session tells it the poses reported (:meth:`probes_reported`)."""

    def __init__(
        self,
        planner,
        skip: int | None = None,
        request: Callable | None = None,
        recentre: Callable | None = None,
        schedule: list | None = None,
        keep: int | None = None,
    ):
        self.planner = planner  # the IceCorrector, prepared or not: its console_state needs no ensemble
        # measures and keeps the images while no ensemble is installed: a twin of the one asked
        # for (its case and placement: the rays and what is assimilated, as a replay has them)
        self.keeper = planner
        self.corrector = None
        # Re-centring. Live: ``recentre(successor)`` starts preparing the next generation (an
        # unprepared IceCorrector) elsewhere, and :meth:`install_successor` takes it when ready.
        # Replay: ``schedule`` (:func:`recentring_schedule`) says after which image the live
        # session asked for each (its centre is checked against the replay's posterior) and
        # after which it installed it; the replay prepares it then, in line.
        self.recentre = recentre
        self.schedule = list(schedule or [])
        self.asked_generation = 0  # the generation last asked for (live)
        self._successor = None  # replay: prepared, to install after the scheduled image
        self.skipped = 0
        self.kept = 0  # images kept while the ensemble was prepared, assimilated when installed
        self.first_time_s: float | None = None  # the first image it corrected from
        self._skip = skip
        self._keep = keep
        self.request = request
        self.centre = None  # the IceCorrector (unprepared or installed) whose placement the ensemble has
        self._moved_noted: set[str] = set()

    @property
    def ready(self) -> bool:
        return self.corrector is not None

    @property
    def departures(self) -> list[str]:
        return list(self.planner.departures)

    def install(self, corrector) -> None:
        """The prepared ensemble asked for: it assimilates the images kept meanwhile, then answers."""
        departures = list(self.planner.departures)
        # the images kept meanwhile, and those of an ensemble dropped for a new placement; the
        # ready note counts them
        self.kept = len(self.keeper.images)
        if self.kept:
            corrector.take_images(self.keeper)
        self.corrector = self.planner = self.keeper = corrector
        self.corrector.departures = departures  # what the console did while the ensemble ran
        if self.centre is None:
            self.centre = corrector

    def console_state(self, time_s, states):
        return self.planner.console_state(time_s, states)

    def prepare_on(self, case, placement: str) -> None:
        """Ask for an ensemble drawn around ``case``'s probes (``placement``: "planned" or
        "reported"); the corrector installed so far no longer describes them and is dropped."""
        settings = self.planner.settings
        previous = self.keeper
        self.centre = IceCorrector(case, settings, placement)
        # not the centre itself: the one sent to be prepared may come back as that very object,
        # prepared afresh (and forgetting its images)
        self.keeper = IceCorrector(case, settings, placement)
        if previous.images:
            # images are observed once freezing has begun, and nothing is prepared again after:
            # kept all the same if they came, for the new ensemble to take
            self.keeper.images, self.keeper.last_time_s = list(previous.images), previous.last_time_s
        self.corrector = None
        if self.request is not None:
            self.request(self.centre)

    def probes_reported(self, case, reported: list, freezing_started: bool) -> list[str]:
        """The session's placement: ``case`` (the probes as the live prediction has them),
        ``reported`` (the probes whose pose the console has reported, as last reported: specs
        with ``name``, ``tip_mm``, ``entry_mm``). Before the first freeze the ensemble is prepared
        again when it no longer fits them; after, a pose beyond the placement prior makes the
        correction not valid. Returns the departures found now."""
        names = {p.name for p in case.probes}
        everyone = names <= {p.name for p in reported}
        placement = "reported" if everyone else "planned"
        if not freezing_started:
            if self.request is None:
                return []
            centre = self.centre
            if centre is None or centre.placement != placement or centre.moved_from_placement(case.probes):
                self.prepare_on(case, placement)
            return []
        if self.centre is None:
            return []
        found = []
        for name, moved_mm, turned_deg in self.centre.moved_from_placement(reported):
            if name in self._moved_noted:
                continue
            self._moved_noted.add(name)
            found.append(
                f"{name} reported {moved_mm:.1f} mm / {turned_deg:.1f}° from the pose the "
                "correction's ensemble was drawn around (after freezing began)"
            )
        self.planner.departures += found
        return found

    def update(self, time_s, observation):
        if self._skip is not None and self.skipped < self._skip:  # a replay of a journal that skipped
            self.skipped += 1
            return None
        if self.corrector is None or (self._keep is not None and self.kept < self._keep):
            # kept until the ensemble is installed (a replay: as many as the live session kept)
            (self.corrector or self.keeper).keep(time_s, observation)
            self.kept += 1
            if self.first_time_s is None:
                self.first_time_s = float(time_s)
            if self.corrector is not None and self.kept == self._keep:
                self.corrector.take_images(self.corrector)
            return None
        if self.first_time_s is None:
            self.first_time_s = float(time_s)
        self._install_scheduled()
        correction = self.corrector.update(time_s, observation)
        if self.recentre is not None:
            if self.corrector.generation >= self.asked_generation and self.corrector.recentring_due():
                successor = self.corrector.recentred()
                self.asked_generation = successor.generation
                self.recentre(successor)
        elif self.schedule:
            self._ask_scheduled()
        return correction

    def install_successor(self, successor) -> None:
        """Install a prepared re-centred ensemble: it takes every image the current one kept (the
        images that came while it ran too) and answers from the next image on."""
        successor.take_images(self.corrector)
        self.corrector = self.planner = successor

    def _ask_scheduled(self) -> None:
        """Replay: the live session asked for a re-centring after this image: the replay's
        posterior must give the same centre, bit for bit; prepared now if it was installed."""
        step = self.schedule[0]
        if step["centre"].images != len(self.corrector.images) or self._successor is not None:
            return
        successor = self.corrector.recentred()
        replayed, journaled = successor.centre.to_dict(), step["centre"].to_dict()
        for key, value in journaled.items():
            if replayed[key] != value:
                raise InputError(
                    f"{step['where']}: centre.{key}",
                    "differs from the posterior the replay reached after the same images "
                    f"(journal {value!r}, replay {replayed[key]!r})"[:400],
                )
        if step["ready_images"] is None:  # asked for, never installed (the session ended first)
            self.schedule.pop(0)
            return
        successor.prepare()
        self._successor = successor

    def _install_scheduled(self) -> None:
        """Replay: install the re-centred ensemble before the image the live session installed it at."""
        if self._successor is None or self.schedule[0]["ready_images"] != len(self.corrector.images):
            return
        self.install_successor(self._successor)
        self._successor = None
        self.schedule.pop(0)


# --- the journal's record of the preparation ---------------------------------------------------


def placement_detail(centre: IceCorrector) -> dict:
    """What the journal keeps of an ensemble's placement: every float as it is (a replay rebuilds
    the same case from it)."""
    return {
        "members": centre.settings.members,
        "placement": centre.placement,
        "probes": {
            p.name: {"tip_mm": [float(v) for v in p.tip_mm], "entry_mm": [float(v) for v in p.entry_mm]}
            for p in centre.case.probes
        },
    }


def _placed_case(case, probes: dict, where: str):
    """``case`` with its probes at the journaled poses (``probes``: name → tip_mm, entry_mm)."""
    if not isinstance(probes, dict):
        raise InputError(where, "probes must be an object of probe name → tip_mm, entry_mm")
    placed = []
    for spec in case.probes:
        pose = probes.get(spec.name)
        if pose is None:
            raise InputError(where, f"has no pose for probe {spec.name!r}")
        ends = []
        for key in ("tip_mm", "entry_mm"):
            value = pose.get(key) if isinstance(pose, dict) else None
            if (
                not isinstance(value, list)
                or len(value) != 3
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in value)
            ):
                raise InputError(where, f"{spec.name}.{key} must be three finite numbers (mm)")
            ends.append(tuple(float(v) for v in value))
        placed.append(replace(spec, tip_mm=ends[0], entry_mm=ends[1]))
    return replace(case, probes=placed)


def _kept_ensemble(contents) -> tuple[bool, int | None]:
    """(whether the journal has preparation notes, the index of the ready note of the ensemble the
    live session kept: the one after its last preparation note, or the last one of a journal
    without them; None when there is none)."""
    preparing = ready = None
    for index, record in enumerate(contents.records):
        if record["kind"] != "live":
            continue
        if record.get("note") == PREPARING_NOTE:
            preparing, ready = index, None
        elif record.get("note") == READY_NOTE:
            ready = index
    return preparing is not None, ready


def _whole_number(contents, index: int, key: str, default=None) -> int:
    value = contents.records[index]["detail"].get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InputError(contents.where(index), f"{key} must be a whole number ≥ 0, got {value!r}")
    return value


def replay_centre(journal_path, case) -> tuple | None:
    """(case placed as the live ensemble was, placement, members or None, images skipped) for a
    replay of ``journal_path``; None when the live session never had a ready ensemble after its
    last preparation began. Journals without preparation notes (a monitor that prepared on the
    plan before connecting): the plan, the insertion prior, the ready note's skip or 0."""
    contents = read_journal(Path(journal_path))
    prepared, ready = _kept_ensemble(contents)
    if not prepared:
        skipped = _whole_number(contents, ready, "images_skipped", 0) if ready is not None else 0
        return case, "planned", None, skipped
    if ready is None:
        return None
    detail = contents.records[ready]["detail"]
    where = contents.where(ready)
    placement = detail.get("placement")
    if placement not in ("planned", "reported"):
        raise InputError(where, f"placement must be 'planned' or 'reported', got {placement!r}")
    members = _whole_number(contents, ready, "members")
    skipped = _whole_number(contents, ready, "images_skipped", 0)
    return _placed_case(case, detail.get("probes"), where), placement, members, skipped


def images_skipped(journal_path) -> int:
    """The images a live session observed before the ensemble it kept was ready and did not
    correct from (journals written before such images were kept; 0 without the note); the same
    note as :func:`replay_centre` reads."""
    contents = read_journal(Path(journal_path))
    _, ready = _kept_ensemble(contents)
    return _whole_number(contents, ready, "images_skipped", 0) if ready is not None else 0


def images_kept(journal_path) -> int:
    """The images a live session kept while the ensemble it kept was prepared, assimilated when it
    was installed (0 without the note, or in a journal written before images were kept)."""
    contents = read_journal(Path(journal_path))
    _, ready = _kept_ensemble(contents)
    return _whole_number(contents, ready, "images_kept", 0) if ready is not None else 0


def recentring_schedule(journal_path, case, members: int) -> list[dict]:
    """The re-centrings a live session asked for and installed, from its journal's notes after
    the ready note of the ensemble it kept: each ``{"centre": Recentring, "ready_images": int or
    None (never installed), "where": the asking note}``, in order. A damaged note is refused by
    its line and field. Journals without these notes (written before re-centring): []."""
    from CryoAblationLogic.analysis.ice_correction import Recentring

    contents = read_journal(Path(journal_path))
    _, ready = _kept_ensemble(contents)
    if ready is None:
        return []
    corrector = IceCorrector(case, CorrectionSettings(members=members))
    probes, materials = len(case.probes), len(corrector._materials())
    schedule: list[dict] = []
    for index in range(ready + 1, len(contents.records)):
        record = contents.records[index]
        if record["kind"] != "live" or record.get("note") not in (RECENTRING_NOTE, RECENTRED_NOTE):
            continue
        where = contents.where(index)
        detail = record.get("detail")
        if not isinstance(detail, dict):
            raise InputError(where, "detail must be an object")
        expected = len(schedule) + 1
        if record["note"] == RECENTRING_NOTE:
            centre = Recentring.from_dict(detail.get("centre"), probes, materials, where)
            if centre.generation != expected or (schedule and schedule[-1]["ready_images"] is None):
                raise InputError(
                    f"{where}: centre.generation",
                    f"must be {expected}, following the re-centrings installed before it, "
                    f"got {centre.generation}",
                )
            if schedule and centre.images < schedule[-1]["ready_images"]:
                raise InputError(
                    f"{where}: centre.images", "lies before the previous re-centring was installed"
                )
            schedule.append({"centre": centre, "ready_images": None, "where": where})
            continue
        generation = _whole_number(contents, index, "generation")
        images = _whole_number(contents, index, "images")
        if (
            not schedule
            or schedule[-1]["ready_images"] is not None
            or generation != schedule[-1]["centre"].generation
        ):
            raise InputError(
                f"{where}: generation", f"{generation} was not asked for before it was installed"
            )
        if images < schedule[-1]["centre"].images:
            raise InputError(f"{where}: images", f"{images} lies before the re-centring was asked for")
        schedule[-1]["ready_images"] = images
    return schedule


def replay_corrector(
    journal_path, corrector, skip: int | None = None, keep: int | None = None
) -> GatedCorrector:
    """``corrector`` (prepared as the live session's: same ensemble size and placement,
    :func:`replay_centre`) for ``replay_procedure(journal, corrector=...)``: it skips or keeps
    the images that the live session skipped (older journals) or kept before its ensemble was
    ready (``skip``, ``keep``: by default the journal's ``correction_ready`` note's), taking the
    kept ones in when the last of them has come, as the live session did when its ensemble was
    installed, and checks the reported poses against its placement as the live session did."""
    skip = images_skipped(journal_path) if skip is None else skip
    keep = images_kept(journal_path) if keep is None else keep
    schedule = recentring_schedule(journal_path, corrector.case, corrector.settings.members)
    gated = GatedCorrector(corrector, skip=skip, schedule=schedule, keep=keep)
    gated.corrector = gated.centre = corrector
    return gated


# --- the ensemble's process -----------------------------------------------------------------


class _Superseded(Exception):
    """A newer placement came while an ensemble was being prepared."""


def serve_preparations(connection) -> None:
    """A process's entry: prepares the ensemble of each request ``("prepare", ident, corrector)``
    (an unprepared IceCorrector: drawn around a placement, or a re-centred generation) that comes
    over ``connection`` and sends ``("progress", ident, done, total)`` after each member, then
    ``("ready", ident, corrector)`` or ``("failed", ident, text)``. A newer request abandons the
    one under way. Ends without a word when the other end goes."""
    pending = None
    while True:
        try:
            request = pending if pending is not None else connection.recv()
            pending = None
            while connection.poll(0):  # only the newest placement is worth preparing
                request = connection.recv()
        except (EOFError, OSError):
            return
        _, ident, corrector = request

        def progress(done: int, total: int, ident=ident) -> None:
            nonlocal pending
            if connection.poll(0):
                pending = connection.recv()
                raise _Superseded
            connection.send(("progress", ident, done, total))

        try:
            corrector.prepare(progress=progress)
            connection.send(("ready", ident, corrector))
        except _Superseded:
            continue
        except (EOFError, OSError):
            return
        except Exception as error:  # said to the session, which shows it; the process goes on
            try:
                connection.send(("failed", ident, f"{error}"[:400]))
            except (EOFError, OSError):
                return


class EnsemblePreparation:
    """The parent's end of :func:`serve_preparations`: ``request`` an ensemble, ``poll`` the
    replies. :meth:`start` makes the process (the CLI); the panel's worker, a daemon that may not
    start children, gets the pipe to one that Slicer's process started."""

    def __init__(self, connection, process=None):
        self.connection = connection
        self.process = process
        self.latest: int | None = None
        self._next = 0

    @classmethod
    def start(cls) -> EnsemblePreparation:
        context = multiprocessing.get_context("spawn")
        parent, child = context.Pipe()
        process = context.Process(
            target=serve_preparations, args=(child,), name="CryoAblation ensemble", daemon=True
        )
        process.start()
        child.close()
        return cls(parent, process)

    def request(self, corrector: IceCorrector) -> int:
        """Prepare ``corrector`` (unprepared: drawn around a placement, or a re-centred generation)."""
        self._next += 1
        self.latest = self._next
        self.connection.send(("prepare", self.latest, corrector))
        return self.latest

    def poll(self) -> list[tuple]:
        """The replies so far (without waiting); ("failed", ident, text) if the process is gone."""
        replies = []
        try:
            while self.connection.poll(0):
                replies.append(self.connection.recv())
        except (EOFError, OSError):
            replies.append(("failed", self.latest, "the ensemble's process ended before it was ready"))
        return replies

    def close(self) -> None:
        try:
            self.connection.close()
        except OSError:
            pass
        if self.process is not None:
            self.process.join(2.0)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(5.0)
            self.process = None


class LiveCorrection:
    """The correction of a live session (CLI monitor and the panel's worker): a
    :class:`GatedCorrector` (:attr:`gated`, the session's corrector) whose ensembles an
    :class:`EnsemblePreparation` prepares, journaled (``attach``). ``state``: phase ("preparing",
    "ready", "failed"), members, done, total, placement, error — what the panel and the CLI show."""

    def __init__(self, case, members: int, preparation: EnsemblePreparation, settings=None):
        # ``settings``: the corrector's (a test's); by default CorrectionSettings with ``members``
        settings = replace(settings or CorrectionSettings(), members=members)
        settings.check()
        self.preparation = preparation
        self.journal = None
        self.clock: Callable[[], float] = lambda: 0.0
        self._notes: list[tuple[str, dict]] = []  # made before the journal was attached
        self.state: dict = {
            "phase": "preparing",
            "members": members,
            "done": 0,
            "total": members,
            "generation": 0,  # the ensemble answering: 0 drawn around the placement, then re-centred
            "recentring": None,  # {generation, done, total} while a re-centred one is prepared
        }
        self.gated = GatedCorrector(
            IceCorrector(case, settings), request=self._request, recentre=self._recentre
        )
        self._detail: dict | None = None
        self._successor_ident: int | None = None  # the re-centring under way

    def attach(self, journal, clock: Callable[[], float], case=None) -> None:
        """Journal the preparations from now on (and those asked for before); ``case``: start
        preparing on it (the plan) unless the session already asked for a placement."""
        self.journal, self.clock = journal, clock
        for note, detail in self._notes:
            self.journal.record_note(note, detail)
        self._notes = []
        if case is not None and self.gated.centre is None:
            self.gated.prepare_on(case, "planned")

    def _note(self, note: str, detail: dict) -> None:
        detail = {**detail, "time_s": self.clock()}
        if self.journal is None:
            self._notes.append((note, detail))
        else:
            self.journal.record_note(note, detail)

    def _request(self, centre: IceCorrector) -> None:
        self._detail = placement_detail(centre)
        self.state.update(phase="preparing", done=0, placement=centre.placement, error="")
        self._note(PREPARING_NOTE, self._detail)
        try:
            self.preparation.request(centre)
        except (OSError, ValueError) as error:
            self.state.update(phase="failed", error=f"the ensemble's process is gone: {error!r}")

    def _recentre(self, successor: IceCorrector) -> None:
        """The session's ensemble asked to be re-centred: journal the centre and prepare it; the
        current ensemble answers the images until it is ready."""
        self._note(
            RECENTRING_NOTE, {"generation": successor.generation, "centre": successor.centre.to_dict()}
        )
        self.state.update(
            recentring={"generation": successor.generation, "done": 0, "total": self.state["members"]}
        )
        try:
            self._successor_ident = self.preparation.request(successor)
        except (OSError, ValueError) as error:
            self.state.update(recentring=None, error=f"the ensemble's process is gone: {error!r}")

    def _poll_successor(self, reply) -> list[str]:
        kind = reply[0]
        if kind == "progress":
            self.state["recentring"] = {
                **(self.state.get("recentring") or {}),
                "done": reply[2],
                "total": reply[3],
            }
            return []
        self._successor_ident = None
        self.state["recentring"] = None
        if kind != "ready":  # the current ensemble goes on answering
            return [f"correction: the re-centred ensemble could not be prepared: {reply[2]}"]
        successor = reply[2]
        self.gated.install_successor(successor)
        images = len(successor.images)
        # a replay installs it after the same image (recentring_schedule)
        self._note(RECENTRED_NOTE, {"generation": successor.generation, "images": images})
        self.state.update(generation=successor.generation)
        return [
            f"correction: ensemble re-centred (generation {successor.generation}) on the posterior "
            f"after {successor.centre.images} images; {images} images assimilated again"
        ]

    def poll(self) -> list[str]:
        """Take the preparation's replies; returns lines worth printing (ready, failed)."""
        lines = []
        for reply in self.preparation.poll():
            kind, ident = reply[0], reply[1]
            if ident is not None and ident == self._successor_ident:
                lines += self._poll_successor(reply)
                continue
            if ident != self.preparation.latest:
                continue  # an answer for a placement since replaced
            if kind == "progress":
                self.state.update(done=reply[2], total=reply[3])
            elif kind == "ready":
                self.gated.install(reply[2])
                # a replay prepares on the same poses and keeps the same images (replay_centre)
                self._note(READY_NOTE, {**(self._detail or {}), "images_kept": self.gated.kept})
                self.state.update(phase="ready", done=self.state["total"])
                lines.append(
                    f"correction: ensemble of {self.state['members']} ready, drawn around the "
                    f"{self.state.get('placement', 'planned')} probe poses"
                    + (
                        f"; the {self.gated.kept} images observed meanwhile taken in"
                        if self.gated.kept
                        else ""
                    )
                )
            else:
                self.state.update(phase="failed", error=str(reply[2])[:400])
                lines.append(f"correction: the ensemble could not be prepared: {reply[2]}")
        return lines
