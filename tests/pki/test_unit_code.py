"""统一社会信用代码 (GB 32100): real codes pass, every single-character error is caught."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pki.errors import InvalidUnitCode
from pki.unit_code import ALPHABET, check_character, make_unit_code, validate_unit_code

KNOWN_VALID = ["91350100M000100Y43", "11100000000013127D"]

# Codes shaped like real ones: registration authority, type, 6-digit division, 9-char organisation code.
first17 = st.builds(lambda a, d, o: a + d + o,
                    st.text(ALPHABET, min_size=2, max_size=2),
                    st.text("0123456789", min_size=6, max_size=6),
                    st.text(ALPHABET, min_size=9, max_size=9))


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_known_codes_are_valid(code):
    assert validate_unit_code(code) == code
    assert make_unit_code(code[:17]) == code


def test_alphabet_is_gb32100s():
    assert len(ALPHABET) == 31 and not set("IOZSV") & set(ALPHABET)


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_lower_case_and_surrounding_spaces_are_normalised(code):
    assert validate_unit_code(f"  {code.lower()}\n") == code


@given(prefix=first17, data=st.data())
def test_every_single_character_substitution_is_rejected(prefix, data):
    code = make_unit_code(prefix)
    assert validate_unit_code(code) == code
    pos = data.draw(st.integers(0, 17), label="position")
    replacement = data.draw(st.sampled_from(ALPHABET + "IOZSV-*中").filter(lambda c: c != code[pos]),
                            label="replacement")
    with pytest.raises(InvalidUnitCode) as err:
        validate_unit_code(code[:pos] + replacement + code[pos + 1:])
    assert err.value.code == "PKI_INVALID_UNIT_CODE"


@pytest.mark.parametrize("code", KNOWN_VALID)
def test_every_substitution_of_the_known_codes_exhaustively(code):
    for pos in range(18):
        for c in ALPHABET:
            if c != code[pos]:
                with pytest.raises(InvalidUnitCode):
                    validate_unit_code(code[:pos] + c + code[pos + 1:])


@pytest.mark.parametrize("bad", ["", "9135010", "91350100M000100Y4", "91350100M000100Y433", " " * 18])
def test_wrong_length_is_rejected(bad):
    with pytest.raises(InvalidUnitCode) as err:
        validate_unit_code(bad)
    assert "18" in err.value.message


@pytest.mark.parametrize("letter", list("IOZSV"))
def test_letters_outside_the_alphabet_are_rejected_by_name(letter):
    code = "91350100M000100Y43"
    bad = code[:8] + letter + code[9:]
    with pytest.raises(InvalidUnitCode) as err:
        validate_unit_code(bad)
    assert letter in err.value.message
    assert "alphabet" in err.value.message


def test_division_code_must_be_digits():
    prefix = "91A50100M000100Y4"  # a letter inside the administrative division
    with pytest.raises(InvalidUnitCode) as err:
        validate_unit_code(make_unit_code(prefix))
    assert "administrative division" in err.value.message


@pytest.mark.parametrize("value", [None, 91350100, b"91350100M000100Y43"])
def test_non_strings_are_typed_errors(value):
    with pytest.raises(InvalidUnitCode):
        validate_unit_code(value)


def test_check_character_formula_by_hand():
    # Σ value×weight over 11100000000013127 (weights 1 3 9 27 19 26 16 17 20 29 25 13 8 24 10 30 28)
    total = 1 * 1 + 1 * 3 + 1 * 9 + 1 * 8 + 3 * 24 + 1 * 10 + 2 * 30 + 7 * 28
    assert ALPHABET[(31 - total % 31) % 31] == check_character("11100000000013127") == "D"


def test_a_code_checked_again_gets_the_same_answer():
    """Codes that passed are remembered (a 通知 to a whole city names 3,600 units, read several
    times on every node): the second answer is the first, normalised; a wrong one stays refused."""
    code = make_unit_code("91350100M000100Y4")
    lower = f" {code.lower()} "
    assert validate_unit_code(lower) == validate_unit_code(lower) == code
    assert validate_unit_code(code) == code
    wrong = code[:17] + ("A" if code[17] != "A" else "B")
    for _ in range(2):
        with pytest.raises(InvalidUnitCode):
            validate_unit_code(wrong)
