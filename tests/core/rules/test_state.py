"""Typed rule state: running aggregates equal a recomputation, and the journal undoes exactly."""

from __future__ import annotations

from decimal import Decimal, localcontext

import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.core.rules.state import Journal, Window, sum_units

#: Amounts as the engine stores them: str() of a Decimal the event contract admits.
amounts = st.decimals(min_value=Decimal(0), max_value=Decimal(10) ** 12, places=18, allow_nan=False).map(
    lambda d: str(d.normalize() if d.as_tuple().exponent < -8 else d)
)


def test_sum_units_reads_what_str_of_a_decimal_writes() -> None:
    assert sum_units("12.50") == (12_500_000_000_000_000_000, 2)
    assert sum_units("1E-7") == (100_000_000_000, 7)
    assert sum_units("1.5E-7") == (150_000_000_000, 8)
    assert sum_units("0") == (0, 0)
    assert sum_units("0." + "0" * 17 + "1") == (1, 18)


@pytest.mark.parametrize("value", ["0." + "0" * 18 + "1", "1E-19", "NaN"])
def test_sum_units_refuses_what_18_places_cannot_hold_exactly(value: str) -> None:
    with pytest.raises(ValueError):
        sum_units(value)


@given(st.lists(amounts, min_size=1, max_size=30), st.data())
def test_a_running_sum_prints_as_the_sum_of_its_entries(values: list[str], data: st.DataObject) -> None:
    """Adding entries, then dropping some from the front: the total is the exact Decimal sum, digit for digit."""
    journal = Journal()
    window = Window()
    for n, value in enumerate(values):
        window.add((n, f"e{n}", value), journal)
    dropped = data.draw(st.integers(min_value=0, max_value=len(values) - 1))
    window.drop(dropped, journal)
    kept = values[dropped:]
    with localcontext(prec=80):  # exact: the default 28 digits would round some of these sums
        expected = sum((Decimal(v) for v in kept), Decimal(0))
        units = int(expected.scaleb(18))
    total = window.total("sum")
    assert total == expected and str(total) == str(expected)
    assert window.units == units
    journal.rollback()
    assert window.entries == [] and window.units == 0 and not window.counts


def test_a_distinct_count_follows_entries_in_and_out() -> None:
    journal = Journal()
    window = Window()
    for n, values in enumerate((["a"], ["a", "b"], ["c"], ["b"])):
        window.add((n, f"e{n}", values), journal)
    assert window.total("distinct_count") == 3
    window.drop(2, journal)  # what is left: ["c"], ["b"]
    assert window.total("distinct_count") == 2
    assert not window.add((3, "e3", ["b"]), journal)  # the same event again counts once
    assert window.total("distinct_count") == 2
