"""Resource quantities ("500m", "1Gi", "1e3") read and written as apimachinery's
``resource.Quantity`` does: upstream's SidecarSet hashes and stored objects carry a quantity in
the form its JSON encoding gives (the text as written when it is already canonical, else the
canonical form), so the manager needs the same rules to hash and store the same bytes. The
hostlet reads resource limits and resourceFieldRef values with the same parser.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from fractions import Fraction

_DECIMAL = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_DECIMAL_SUFFIX = {e: s for s, e in _DECIMAL.items()}
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_BINARY_SUFFIX = {e: s for s, e in _BINARY.items()}
_NUMBER = re.compile(r"^([+-]?)0*([0-9]*)(?:\.([0-9]*))?(.*)$")
_EXPONENT = re.compile(r"^[eE][+-]?[0-9]+$")
_NANO, _MAX_FACTORS, _MAX_INT64 = -9, 18, (1 << 63) - 1


class QuantityError(ValueError):
    """Not a quantity (apimachinery's parser refuses it too)."""


@dataclass(frozen=True)
class Quantity:
    value: Fraction
    format: str  # DecimalSI, BinarySI or DecimalExponent
    text: str | None = None  # kept when the input is already canonical, as apimachinery keeps it
    scale: int | None = None  # the decimal scale of an exact int64 amount (None: arbitrary precision)

    def __str__(self) -> str:
        return self.text if self.text is not None else canonical(self.value, self.format)


def _round_up(value: Fraction, scale: int) -> Fraction:
    """Away from zero, to a multiple of 10**scale."""
    unit = Fraction(10) ** scale
    units = value / unit
    magnitude = math.ceil(abs(units))
    return (magnitude if units >= 0 else -magnitude) * unit


def parse(text) -> Quantity:
    """A quantity from its JSON value (a string, or a number written as such)."""
    if isinstance(text, bool) or not isinstance(text, (str, int, float)):
        raise QuantityError(f"quantity must be a string or a number, not {type(text).__name__}")
    text = str(text).strip() if not isinstance(text, str) else text.strip()
    if text == "":
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    if text == "0":
        return Quantity(Fraction(0), "DecimalSI", "0", 0)
    found = _NUMBER.match(text)
    sign, num, denom, suffix = found.group(1), found.group(2) or "0", found.group(3) or "", found.group(4)
    if suffix in _DECIMAL:
        base, exponent, fmt = 10, _DECIMAL[suffix], "DecimalSI"
    elif suffix in _BINARY:
        base, exponent, fmt = 2, _BINARY[suffix], "BinarySI"
    elif _EXPONENT.match(suffix):
        base, exponent, fmt = 10, int(suffix[1:]), "DecimalExponent"
    else:
        raise QuantityError(f"unable to parse quantity's suffix: {text!r}")
    positive = sign != "-"
    digits = Fraction(int(num + denom or "0"), 10 ** len(denom))
    value = digits * (Fraction(10) ** exponent if base == 10 else 2 ** exponent)
    if not positive:
        value = -value
    # apimachinery's fast path: an exact int64 amount, keeping the text when it is canonical.
    if fmt == "BinarySI":
        precision = 15 - len(num) - int(exponent * 3 / 10) - 1 if not denom else -1
        scale = 0
    else:
        precision = _MAX_FACTORS - len(num) - len(denom)
        scale = exponent
    if precision >= 0:
        scale -= len(denom)
        shifted = num + denom
        if scale >= _NANO and int(shifted) * (2 ** exponent if base == 2 else 1) <= _MAX_INT64:
            keep = (exponent % 10 == 0 and int(shifted) & 7 != 0) if fmt == "BinarySI" else \
                (scale % 3 == 0 and not shifted.endswith("000") and shifted[0] != "0")
            return Quantity(value, fmt, text if keep else None, scale)
    if value != 0:
        value = _round_up(value, _NANO)
    if fmt == "BinarySI" and value > _MAX_INT64:
        value = Fraction(_MAX_INT64)
    if fmt == "BinarySI" and 0 < abs(value) < 1:
        fmt = "DecimalSI"
    return Quantity(value, fmt)


def round_up(q: Quantity, scale: int) -> Quantity:
    """``Quantity.RoundUp(scale)``: the text is kept only when nothing had to change."""
    if q.scale is not None and q.scale >= scale:
        return q
    return Quantity(_round_up(q.value, scale), q.format, None, scale if q.scale is not None else None)


def canonical(value: Fraction, fmt: str) -> str:
    if value == 0:
        return "0"
    if fmt == "BinarySI":
        if -1024 < value < 1024 or value.denominator != 1:
            fmt = "DecimalSI"
        else:
            number, exponent = int(value), 0
            while number % 1024 == 0:
                number //= 1024
                exponent += 10
            return f"{number}{_BINARY_SUFFIX.get(exponent, '')}"
    # Decimal: the mantissa without trailing zeros, the exponent lowered to a multiple of 3.
    exponent = 0
    while value.denominator != 1:
        value *= 10
        exponent -= 1
    number = int(value)
    while number % 10 == 0:
        number //= 10
        exponent += 1
    shift = exponent % 3
    number, exponent = number * 10 ** shift, exponent - shift
    if fmt == "DecimalExponent":
        return f"{number}e{exponent}" if exponent else str(number)
    return f"{number}{_DECIMAL_SUFFIX.get(exponent, '')}"
