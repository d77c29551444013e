"""Phone numbers: any common format in, E.164 out, or InvalidPhoneNumber."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chatflow.domain.phone import normalize_phone
from chatflow.errors import InvalidPhoneNumber, ValidationFailed

# ITU-T E.164: a "+", a country code that does not start with 0, at most 15 digits in all.
E164 = re.compile(r"^\+[1-9]\d{6,14}$")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("+14155550101", "+14155550101"),
        ("+1 415 555 0101", "+14155550101"),
        ("+1 (415) 555-0101", "+14155550101"),
        ("(415) 555-0101", "+14155550101"),
        ("415.555.0101", "+14155550101"),
        ("4155550101", "+14155550101"),
        ("  +14155550101  ", "+14155550101"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+44 20 7946 0958", "+442079460958"),
        ("+33 6 12 34 56 78", "+33612345678"),
    ],
)
def test_common_formats_are_normalised_to_e164(raw: str, expected: str) -> None:
    # Given a number written in a common format
    # When it is normalised
    result = normalize_phone(raw)
    # Then it comes back in E.164
    assert result == expected


@pytest.mark.parametrize(
    "raw",
    ["", "   ", "hello", "+1", "12345", "+1 415 555 01011111", "+999 1234567", "+" + "1" * 40],
)
def test_unparseable_or_invalid_numbers_raise_invalid_phone_number(raw: str) -> None:
    # Given something that is not a valid phone number
    # When it is normalised
    # Then InvalidPhoneNumber is raised
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)


def test_invalid_phone_number_is_a_validation_error_with_its_code() -> None:
    # Given an invalid number
    # When it is normalised
    with pytest.raises(ValidationFailed) as caught:
        normalize_phone("not a number")
    # Then the error maps to 400 invalid_phone_number
    assert caught.value.code == "invalid_phone_number"


def test_non_string_input_raises_invalid_phone_number() -> None:
    # Given a value that is not a string at all
    # When it is normalised
    # Then it is rejected like any invalid number, not with a TypeError
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(14155550101)  # type: ignore[arg-type]


def test_normalising_is_idempotent() -> None:
    # Given a number already normalised
    once = normalize_phone("(415) 555-0101")
    # When it is normalised again
    # Then nothing changes
    assert normalize_phone(once) == once


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=40),
        st.text(alphabet="+0123456789 ()-.", max_size=25),
        st.from_regex(r"\+?[0-9]{6,16}", fullmatch=True),
    )
)
def test_output_is_always_e164_or_invalid_phone_number(raw: str) -> None:
    # Given any text at all
    # When it is normalised
    try:
        result = normalize_phone(raw)
    except InvalidPhoneNumber:
        # Then either it is rejected with InvalidPhoneNumber ...
        return
    # ... or the result has E.164's shape and is stable
    assert E164.match(result), result
    assert normalize_phone(result) == result


def test_numbers_longer_than_fifteen_digits_are_not_returned() -> None:
    # Given a German number of 16 digits that libphonenumber's metadata accepts
    raw = "+4920100000000000"
    # When it is normalised, Then it is rejected: E.164 has at most 15 digits
    with pytest.raises(InvalidPhoneNumber):
        normalize_phone(raw)
