"""Rows of ids, by table (dense catalog ids) or by sorted search (ids spread wide): the same answers."""

from __future__ import annotations

import numpy as np
import pytest

from musimilar.idlookup import IdLookup


@pytest.mark.parametrize(
    "ids",
    [
        np.array([5, 3, 9, 1, 2], dtype=np.int64),  # dense: a table
        np.array([5, 10**12, 3, 2**40], dtype=np.int64),  # spread wide: a sorted search
        np.array([7, -4, 2], dtype=np.int64),  # negative: a sorted search
    ],
)
def test_rows_of_present_and_absent_ids(ids: np.ndarray) -> None:
    lookup = IdLookup(ids)
    wanted = np.concatenate([ids[::-1], np.array([0, 4, -1, 10**13, 2**62], dtype=np.int64)])
    expected = [list(ids).index(i) if i in ids else -1 for i in wanted]
    assert lookup.rows(wanted).tolist() == expected
    assert [lookup.row(int(i)) for i in wanted] == [None if row < 0 else row for row in expected]
    assert lookup.rows(np.zeros(0, dtype=np.int64)).tolist() == []


def test_an_empty_set_of_ids_finds_nothing() -> None:
    lookup = IdLookup(np.zeros(0, dtype=np.int64))
    assert lookup.rows(np.array([1, 2], dtype=np.int64)).tolist() == [-1, -1] and lookup.row(1) is None
