"""Rows of ids: where each of a set of unique integer ids (catalog track ids) sits in an array of them.

Catalog ids are small and dense (1, 2, 3, ...), so the lookup is a table indexed by id, one memory read per id; a
set of ids spread far wider than its size is searched in a sorted copy instead. A server looks up a hundred ids per
answer, several times: the table makes that a few microseconds.
"""

from __future__ import annotations

import numpy as np

DENSE_SPREAD = 4  # a table up to this many entries per id (plus DENSE_MINIMUM), else a sorted search
DENSE_MINIMUM = 1 << 16


class IdLookup:
    def __init__(self, ids: np.ndarray) -> None:
        """`ids` [N]: unique integers; row i holds ids[i]."""
        ids = np.asarray(ids, dtype=np.int64)
        self._table: np.ndarray | None = None
        self._order = self._sorted = np.zeros(0, dtype=np.int64)
        if len(ids) and ids.min() >= 0 and ids.max() < DENSE_SPREAD * len(ids) + DENSE_MINIMUM:
            self._table = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
            self._table[ids] = np.arange(len(ids))
        else:
            self._order = np.argsort(ids, kind="stable")
            self._sorted = ids[self._order]

    def rows(self, wanted: np.ndarray) -> np.ndarray:
        """[M] int64: the row of each of `wanted` ([M] int64), -1 where an id is absent."""
        table = self._table
        if table is None:
            return self._searched(wanted)
        if len(wanted) == 0 or (wanted.min() >= 0 and wanted.max() < len(table)):
            return table[wanted]
        inside = (wanted >= 0) & (wanted < len(table))
        return np.where(inside, table[np.where(inside, wanted, 0)], -1)

    def row(self, wanted: int) -> int | None:
        """The row of id `wanted`, or None."""
        table = self._table
        if table is None:
            row = int(self._searched(np.array([wanted], dtype=np.int64))[0])
        else:
            row = int(table[wanted]) if 0 <= wanted < len(table) else -1
        return None if row < 0 else row

    def _searched(self, wanted: np.ndarray) -> np.ndarray:
        if len(self._sorted) == 0:
            return np.full(wanted.shape, -1, dtype=np.int64)
        position = np.minimum(np.searchsorted(self._sorted, wanted), len(self._sorted) - 1)
        return np.where(self._sorted[position] == wanted, self._order[position], -1).astype(np.int64)
