"""What a forecast of the ice correction (``Correction.forecasts[event]``, see
:mod:`.ice_correction`) says in words, for the monitor's line, the panel's status line and the ice
report. Light on purpose (no numpy): Slicer's main process writes the panel's line."""

from __future__ import annotations

from collections.abc import Callable, Mapping


def chance_percent(fraction: float) -> str:
    """A chance as a whole percentage that never reads as 0 % or 100 % when it is neither."""
    value = 100.0 * fraction
    if 0.0 < value < 0.5:
        return "< 1 %"
    if 99.5 <= value < 100.0:
        return "> 99 %"
    return f"{value:.0f} %"


def forecast_words(times: Mapping, when: Callable[[float], str]) -> str:
    """What a forecast (``Correction.forecasts[event]``) says, for a status line; ``when`` writes a
    time. When the median member does not see the event within the protocol, the chance that it
    happens all the same, and its p10 time, are said with it: a contact with a critical structure
    that a fifth of the members foresee must not read as a plain "never"."""
    never = float(times.get("p_never", 0.0))
    p10, p50, p90 = times.get("p10"), times.get("p50"), times.get("p90")
    if p50 is None:
        if never >= 1.0:
            return "not within the protocol"
        earliest = f", p10 {when(p10)}" if p10 is not None else ""
        return f"not within the protocol ({chance_percent(1.0 - never)} chance it does{earliest})"
    text = (
        f"at {when(p50)} (p10 {when(p10)}, p90 {when(p90) if p90 is not None else 'not within the protocol'})"
    )
    if never > 0.0:
        text += f", {chance_percent(never)} chance it does not"
    return text
