"""The argument checks every module shares: what each accepts, what it returns, what it refuses."""

from __future__ import annotations

import math
from fractions import Fraction

import pytest

from inference_metrics.validation import (
    FAST_NUMBER,
    MAX_FLOAT,
    label_value,
    number,
    positive_int,
    positive_number,
)


@pytest.mark.parametrize(
    ("value", "expected"), [(0, 0.0), (2, 2.0), (1.5, 1.5), (Fraction(1, 4), 0.25)]
)
def test_a_number_is_returned_as_a_float(value: object, expected: float) -> None:
    result = number("x", value)
    assert (type(result), result) == (float, expected)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        (True, TypeError, "^x must be a number"),
        ("3", TypeError, "^x must be a number"),
        (math.nan, ValueError, "^x must be finite"),
        (math.inf, ValueError, "^x must be finite"),
        (10**400, ValueError, "^x must be finite, got a number too large"),
        (-1, ValueError, "^x must be >= 0"),
    ],
)
def test_a_bad_number_names_the_argument(
    value: object, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        number("x", value)


def test_a_number_without_a_minimum_may_be_negative() -> None:
    assert number("x", -2, minimum=None) == -2.0


def test_the_inline_fast_check_admits_exactly_what_number_returns_unchanged() -> None:
    for value in (0, 1, 2.5, MAX_FLOAT):
        assert type(value) in FAST_NUMBER
        assert 0 <= value <= MAX_FLOAT
        assert number("x", value) == value
    for value in (True, -1, math.nan, math.inf, 10**400):
        assert not (type(value) in FAST_NUMBER and 0 <= value <= MAX_FLOAT)


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (-3, ValueError), (1.0, TypeError), (True, TypeError)]
)
def test_a_positive_int_refuses_anything_else(value: object, error: type[Exception]) -> None:
    with pytest.raises(error, match=r"^n must be"):
        positive_int("n", value)
    assert positive_int("n", 3) == 3


@pytest.mark.parametrize(
    ("value", "error"), [(0, ValueError), (math.inf, ValueError), ("1", TypeError)]
)
def test_a_positive_number_of_seconds_refuses_anything_else(
    value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=r"^timeout must be"):
        positive_number("timeout", value, "seconds")
    assert positive_number("timeout", 2, "seconds") == 2.0


def test_a_label_value_is_a_plain_bounded_unicode_string() -> None:
    class Sub(str):
        pass

    assert type(label_value("model_name", Sub("m"), 10)) is str
    with pytest.raises(TypeError, match=r"^model_name must be a string"):
        label_value("model_name", 3, 10)
    with pytest.raises(ValueError, match=r"^model_name is 11 characters long; at most 10"):
        label_value("model_name", "x" * 11, 10)
    with pytest.raises(ValueError, match=r"^model_name is not valid Unicode"):
        label_value("model_name", "\ud800", 10)
