"""Journals and their files are untrusted input: every damaged record exits 2 naming its line
(never a traceback or a hang), and every file a record names stays inside the journal's folder.
The monitor says what is wrong with its peers instead of exiting 0 with "0 console messages"."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from live_testing import ORIGIN_S, free_port, sensor, small_case, state

from CryoAblationLogic.cli.main import main as cli_main
from CryoAblationLogic.core.errors import InputError
from CryoAblationLogic.igtl.messages import ImageMessage
from CryoAblationLogic.live.journal import journal_file, read_journal
from CryoAblationLogic.live.link import Endpoint
from CryoAblationLogic.live.runner import open_session
from CryoAblationLogic.scene.live_link import choose_sources, connector_honours


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """A short live procedure journal: start, a frame, a freeze, readings, a clock move."""
    folder = tmp_path_factory.mktemp("recorded")
    path = folder / "procedure.jsonl"
    journal, session, _ = open_session(small_case(), path, update_interval_s=2.0)
    session.journal = journal
    frame = ImageMessage(np.arange(60, dtype=np.int16).reshape(5, 4, 3), device_name="MR Image")
    for message, t in ((frame, 0.0), (state("FREEZE 1", 0.0), 0.0), (sensor("TC1", 4.0, 30.0), 4.0)):
        journal.record_message(message, ORIGIN_S + t, link="console")
        session.feed(message, ORIGIN_S + t, link="console")
    session.follow_wall_clock(0.0, now=session._wall_ref + 3.0)  # a journaled wall-clock move
    journal.close()
    return path


def _lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _write(path, records) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _index(records, predicate) -> int:
    return next(n for n, r in enumerate(records) if predicate(r))


def _image(r):
    return r.get("message_type") == "IMAGE"


def _status(r):
    return r.get("message_type") == "STATUS"


def _start(r):
    return r.get("note") == "start"


def _clock(r):
    return r.get("note") == "clock"


# (what is damaged, which record, how) — each must exit 2 naming that record's line
DAMAGE = [
    ("image path with ..", _image, lambda r: r["content"].update(file="../../etc/passwd")),
    ("absolute image path", _image, lambda r: r["content"].update(file="/etc/passwd")),
    ("image path not text", _image, lambda r: r["content"].update(file=["x"])),
    ("raw image path with ..", _image, lambda r: r["content"].update(raw_file="../x.igtl")),
    ("missing image file", _image, lambda r: r["content"].update(file="procedure_images/none.nrrd")),
    ("clock at 1e9 s", _clock, lambda r: r["detail"].update(time_s=1e9)),
    ("clock leaping ahead", _clock, lambda r: r["detail"].update(time_s=3000.0)),
    ("clock time as text", _clock, lambda r: r["detail"].update(time_s="soon")),
    ("clock count negative", _clock, lambda r: r["detail"].update(after_console_messages=-1)),
    ("update interval 1e-6 s", _start, lambda r: r["detail"]["settings"].update(update_interval_s=1e-6)),
    ("update interval as text", _start, lambda r: r["detail"]["settings"].update(update_interval_s="1")),
    ("unknown setting", _start, lambda r: r["detail"]["settings"].update(speed=3)),
    ("probe names not a list", _start, lambda r: r["detail"]["settings"].update(probe_names="P1")),
    ("kind unknown", _status, lambda r: r.update(kind="gossip")),
    ("arrival time negative", _status, lambda r: r.update(arrival_time_s=-5)),
    ("arrival time 1e300", _status, lambda r: r.update(arrival_time_s=1e300)),
    ("message type too long", _status, lambda r: r.update(message_type="STATUS_AND_MORE")),
    ("header version 7", _status, lambda r: r.update(header_version=7)),
    ("time stamp negative", _status, lambda r: r.update(timestamp_raw=-1)),
    ("time stamp 5000 digits", _status, lambda r: r.update(timestamp_raw=int("9" * 4000))),
    ("metadata not text", _status, lambda r: r.update(metadata={"a": 1})),
    ("content missing", _status, lambda r: r.pop("content")),
    ("status code as text", _status, lambda r: r["content"].update(code="1")),
    ("status code 10**30", _status, lambda r: r["content"].update(code=10**30)),
    ("status text missing", _status, lambda r: r["content"].pop("status_message")),
    ("link unknown", _status, lambda r: r.update(link="anyone")),
    ("image voxels shape lies", _image, lambda r: r["content"].update(subvolume_size=[9, 9, 9])),
    ("image dtype unknown", _image, lambda r: r["content"].update(dtype="complex512")),
    ("image axes not numbers", _image, lambda r: r["content"].update(axes_mm=[["a"] * 3] * 3)),
]


@pytest.mark.parametrize(("what", "which", "damage"), DAMAGE, ids=[d[0] for d in DAMAGE])
def test_every_damaged_record_exits_2_naming_its_line(recorded, tmp_path, capsys, what, which, damage):
    folder = tmp_path / "copy"
    folder.mkdir()
    for item in recorded.parent.rglob("*"):
        if item.is_file():
            target = folder / item.relative_to(recorded.parent)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(item.read_bytes())
    records = _lines(recorded)
    index = _index(records, which)
    damage(records[index])
    _write(folder / "procedure.jsonl", records)
    assert cli_main(["replay", str(folder / "procedure.jsonl"), "--out", str(tmp_path / "out")]) == 2
    error = capsys.readouterr().err
    assert f"procedure.jsonl:{index + 1}" in error, error
    assert "Traceback" not in error


@pytest.mark.parametrize(
    "line",
    [b"{not json", b"\xff\xfe", b"[" * 100_000, b'{"kind": NaN}', b"null", b'{"kind": "event"}'],
    ids=["not JSON", "not UTF-8", "deep nesting", "NaN literal", "null", "event without fields"],
)
def test_a_damaged_line_exits_2_naming_it(recorded, tmp_path, capsys, line):
    data = recorded.read_bytes().split(b"\n")
    data.insert(2, line)
    path = tmp_path / "procedure.jsonl"
    path.write_bytes(b"\n".join(data))
    (tmp_path / "procedure_case").mkdir()
    assert cli_main(["replay", str(path), "--out", str(tmp_path / "out")]) == 2
    assert "procedure.jsonl:3" in capsys.readouterr().err


def test_the_intact_recording_replays(recorded, tmp_path, capsys):
    assert cli_main(["replay", str(recorded), "--out", str(tmp_path / "out")]) == 0
    assert "replayed" in capsys.readouterr().out


def test_image_files_stay_in_the_journals_folder(tmp_path):
    (tmp_path / "images").mkdir()
    (tmp_path / "images" / "a.nrrd").write_bytes(b"x")
    assert journal_file(tmp_path, "images/a.nrrd", "file") == tmp_path / "images" / "a.nrrd"
    outside = tmp_path.parent / "outside.nrrd"
    outside.write_bytes(b"x")
    (tmp_path / "images" / "link.nrrd").symlink_to(outside)
    for name in (
        "../outside.nrrd",
        str(outside),
        "images/../../outside.nrrd",
        "images/link.nrrd",
        "C:\\x",
        "",
    ):
        with pytest.raises(InputError, match="file"):
            journal_file(tmp_path, name, "file")


def test_a_journal_image_must_hold_its_own_voxels(recorded, tmp_path):
    contents = read_journal(recorded)
    record = next(r for r in contents.records if r.get("message_type") == "IMAGE")
    path = contents.folder / record["content"]["file"]
    header = path.read_bytes().split(b"\n\n", 1)[0]
    detached = tmp_path / "detached.nrrd"
    detached.write_bytes(header + b"\ndata file: /etc/hostname\n\n")
    from CryoAblationLogic.live.journal import read_image_nrrd

    with pytest.raises(InputError, match="data file"):
        read_image_nrrd(detached)


def test_monitor_with_nothing_to_talk_to_says_so_and_exits_3(tmp_path, capsys):
    port = free_port()
    argv = ["monitor", "--port", str(port), "--out", str(tmp_path / "out"), "--duration", "1.5"]
    assert cli_main([*argv, "--spacing-mm", "4"]) == 3
    out, err = capsys.readouterr()
    assert re.search(rf"waiting for console at 127\.0\.0\.1:{port}: connection refused \(retrying\)", out)
    assert out.count("waiting for console") == 1  # retried every 0.5 s, said once
    assert f"no peer sent anything (console at 127.0.0.1:{port})" in err
    assert cli_main([*argv, "--spacing-mm", "4", "--wait", "--journal", str(tmp_path / "j2.jsonl")]) == 0


def test_the_connector_is_used_only_where_it_can_keep_to_the_endpoint(tmp_path):
    assert connector_honours(Endpoint("client", "10.0.0.9", 18944))
    assert connector_honours(Endpoint("server", "0.0.0.0", 18944, ("*",)))
    assert not connector_honours(Endpoint("server", "127.0.0.1", 18944))  # it would listen everywhere
    assert not connector_honours(Endpoint("server", "0.0.0.0", 18944))  # it cannot keep to this machine
    with pytest.raises(InputError, match=r"cannot keep to 127\.0\.0\.1"):
        choose_sources(None, None, scanner=Endpoint("server", "127.0.0.1", 1), use_connector=True)
    sources = choose_sources(None, None, scanner=Endpoint("server", "127.0.0.1", 0))  # our own server
    assert [s.kind for s in sources] == ["client"] and sources[0].link.links["scanner"].host == "127.0.0.1"
