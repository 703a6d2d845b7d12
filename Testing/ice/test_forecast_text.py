"""The forecasts in words (issue 14): what the monitor's line and the panel's status line say of
each event, from the correction's percentiles and its chance that the event does not happen."""

from types import SimpleNamespace

from CryoAblationLogic.analysis.forecast_text import forecast_words
from CryoAblationLogic.cli.monitor import correction_line


def seconds(t: float) -> str:
    return f"{t:.0f} s"


def test_a_forecast_within_the_protocol_gives_its_median_and_band():
    times = {"p10": 950.0, "p50": 990.0, "p90": 1045.0, "p_never": 0.0}
    assert forecast_words(times, seconds) == "at 990 s (p10 950 s, p90 1045 s)"


def test_a_median_that_some_members_do_not_reach_says_how_many_do_not():
    times = {"p10": 1400.0, "p50": 1550.0, "p90": None, "p_never": 0.25}
    assert forecast_words(times, seconds) == (
        "at 1550 s (p10 1400 s, p90 not within the protocol), 25 % chance it does not"
    )


def test_a_contact_the_median_does_not_see_is_not_a_plain_never():
    # 14 % of the members bring the ice to the structure: the operator reads that chance and when
    # the earliest of them do, not "never" (validation seed 4's bowel had 10–50 % and happened)
    times = {"p10": 1500.0, "p50": None, "p90": None, "p_never": 0.86}
    assert forecast_words(times, seconds) == "not within the protocol (14 % chance it does, p10 1500 s)"
    rare = {"p10": None, "p50": None, "p90": None, "p_never": 0.95}
    assert forecast_words(rare, seconds) == "not within the protocol (5 % chance it does)"


def test_only_a_certain_outcome_reads_as_certain():
    assert forecast_words({"p10": None, "p50": None, "p90": None, "p_never": 1.0}, seconds) == (
        "not within the protocol"
    )
    nearly = {"p10": None, "p50": None, "p90": None, "p_never": 0.998}
    assert forecast_words(nearly, seconds) == "not within the protocol (< 1 % chance it does)"
    almost = {"p10": 900.0, "p50": 950.0, "p90": 990.0, "p_never": 0.003}
    assert forecast_words(almost, seconds).endswith(", < 1 % chance it does not")


def test_the_monitor_line_says_the_chance_of_a_contact_the_median_does_not_see():
    correction = SimpleNamespace(
        images=12,
        time_s=1380.0,
        ensemble={"generation": 0},
        isotherm_volumes_ml={-40.0: {"p10": 24.1, "p50": 22.7, "p90": 21.2}},
        forecasts={
            "lethal_covers_target": {"p10": 950.0, "p50": 990.0, "p90": 1045.0, "p_never": 0.0},
            "ice_reaches:Bowel": {"p10": 1594.0, "p50": None, "p90": None, "p_never": 0.7},
        },
        valid=True,
        departures=[],
    )
    assert correction_line(correction) == (
        "corrected after 12 images (at 1380 s); −40 °C 22.7 ml (p10–p90 21.2–24.1); "
        "lethal_covers_target at 990 s (p10 950 s, p90 1045 s); "
        "ice_reaches:Bowel not within the protocol (30 % chance it does, p10 1594 s)"
    )
