"""统一社会信用代码 (unified social credit code, GB 32100-2015): parsing and check character.

18 characters from a 31-character alphabet (digits and capitals without I, O, Z, S, V):
1 registration authority, 2 organisation type, 3–8 administrative division, 9–17 organisation
code, 18 check character = (31 − Σ(value × weight) mod 31) mod 31 over the first 17.
"""

from __future__ import annotations

from .errors import InvalidUnitCode

ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
# The shape alone (ALPHABET, either case; a division code in 3–8), for schemas: the check character
# cannot be written as a pattern, so validate_unit_code stays the judge.
_CLASS = "0-9A-HJ-NP-RTUW-Ya-hj-np-rtuw-y"
UNIT_CODE_PATTERN = f"^[{_CLASS}]{{2}}[0-9]{{6}}[{_CLASS}]{{10}}$"
UNIT_CODE_FORMAT = "gb32100"  # the JSON Schema ``format`` naming the whole rule, check character included
_VALUE = {c: i for i, c in enumerate(ALPHABET)}
_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def check_character(first17: str) -> str:
    total = sum(_VALUE[c] * w for c, w in zip(first17, _WEIGHTS, strict=True))
    return ALPHABET[(31 - total % 31) % 31]


_VALID: dict[str, str] = {}  # code as given -> normalised, for codes that passed
_VALID_MAX = 1 << 16  # a network's units, many times over; cleared whole when full


def validate_unit_code(code: str) -> str:
    """Return ``code`` normalised (upper case, stripped) or raise :class:`InvalidUnitCode`.

    A code that passed is remembered: a 通知 to a whole city names 3,600 units, and every node it
    reaches reads that list several times (the package check, the metadata, the full validation)."""
    if not isinstance(code, str):
        raise InvalidUnitCode("unit code must be a string", value=repr(code))
    known = _VALID.get(code)
    if known is not None:
        return known
    norm = _validate(code)
    if len(_VALID) >= _VALID_MAX:
        _VALID.clear()
    _VALID[code] = norm
    return norm


def _validate(code: str) -> str:
    norm = code.strip().upper()
    if len(norm) != 18:
        raise InvalidUnitCode(f"unit code {code!r} must have 18 characters, has {len(norm)}", value=code)
    bad = [c for c in norm if c not in _VALUE]
    if bad:
        raise InvalidUnitCode(f"unit code {code!r} has characters outside GB 32100's alphabet: {''.join(bad)}",
                              value=code)
    if not norm[2:8].isdigit():
        raise InvalidUnitCode(f"unit code {code!r}: characters 3–8 must be an administrative division code",
                              value=code)
    expected = check_character(norm[:17])
    if norm[17] != expected:
        raise InvalidUnitCode(f"unit code {code!r} has check character {norm[17]}, expected {expected}",
                              value=code)
    return norm


def make_unit_code(prefix17: str) -> str:
    """Complete 17 characters with their check character (tests, demos, fixtures)."""
    return prefix17 + check_character(prefix17)
