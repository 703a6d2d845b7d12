"""The 64-bit SI unit code of SENSOR messages (OpenIGTLink's Documents/Protocol/unit; docs/live-link.md).

Bits from the top: PREFIX (4 bits), then six (UNIT 6 bits, EXP 4 bits) pairs. Exponents and
prefixes are 4-bit two's complement. The table has kelvin but no degree Celsius, so temperatures
travel in kelvin and are converted at the edge (:func:`kelvin_to_celsius`).
"""

from __future__ import annotations

from CryoAblationLogic.igtl.errors import ProtocolError

PREFIXES = {
    0: 0,
    1: 1,
    2: 2,
    3: 3,
    4: 6,
    5: 9,
    6: 12,
    7: 15,
    9: -1,
    10: -2,
    11: -3,
    12: -6,
    13: -9,
    14: -12,
    15: -15,
}
UNITS = {
    "meter": 0x01,
    "gram": 0x02,
    "second": 0x03,
    "ampere": 0x04,
    "kelvin": 0x05,
    "mole": 0x06,
    "candela": 0x07,
    "radian": 0x08,
    "steradian": 0x09,
    "hertz": 0x0A,
    "newton": 0x0B,
    "pascal": 0x0C,
    "joule": 0x0D,
    "watt": 0x0E,
    "coulomb": 0x0F,
    "volt": 0x10,
    "farad": 0x11,
    "ohm": 0x12,
    "siemens": 0x13,
    "weber": 0x14,
    "tesla": 0x15,
    "henry": 0x16,
    "lumen": 0x17,
    "lux": 0x18,
    "becquerel": 0x19,
    "gray": 0x1A,
    "sievert": 0x1B,
}
_NAMES = {code: name for name, code in UNITS.items()}
_PREFIX_CODES = {exponent: code for code, exponent in PREFIXES.items()}
ZERO_CELSIUS_K = 273.15


def encode_unit(units: list[tuple[str, int]], prefix_exponent: int = 0) -> int:
    """Unit code of a product of SI units, e.g. ``[("meter", 1), ("second", -2)]`` for m/s²;
    ``prefix_exponent`` is the power of ten of the SI prefix (-3 for milli)."""
    if prefix_exponent not in _PREFIX_CODES:
        raise ProtocolError("unit.prefix", f"10^{prefix_exponent} is not an SI prefix the protocol has")
    if len(units) > 6:
        raise ProtocolError("unit", "at most six units")
    code = _PREFIX_CODES[prefix_exponent] << 60
    for n, (name, exponent) in enumerate(units):
        if name not in UNITS:
            raise ProtocolError("unit", f"unknown unit {name!r}")
        if not -7 <= exponent <= 7:
            raise ProtocolError("unit", f"exponent {exponent} outside -7 … 7")
        shift = 50 - 10 * n
        code |= (UNITS[name] << (shift + 4)) | ((exponent & 0xF) << shift)
    return code


def decode_unit(code: int) -> tuple[list[tuple[str, int]], int]:
    """(units with exponents, prefix power of ten) of a unit code."""
    prefix = (code >> 60) & 0xF
    if prefix not in PREFIXES:
        raise ProtocolError("unit.prefix", f"prefix code {prefix} is not defined")
    units = []
    for n in range(6):
        shift = 50 - 10 * n
        unit, exponent = (code >> (shift + 4)) & 0x3F, (code >> shift) & 0xF
        if unit == 0:
            continue
        if unit not in _NAMES:
            raise ProtocolError("unit", f"unit code {unit:#x} is not defined")
        units.append((_NAMES[unit], exponent - 16 if exponent & 0x8 else exponent))
    return units, PREFIXES[prefix]


KELVIN = encode_unit([("kelvin", 1)])


def kelvin_to_celsius(value_k):
    return value_k - ZERO_CELSIUS_K


def celsius_to_kelvin(value_c):
    return value_c + ZERO_CELSIUS_K
