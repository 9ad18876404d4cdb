"""Values of one key in the slices' JSON args, for many rows at once.

A regex over the raw JSON text, vectorized in Arrow: parsing every args object in Python would
dominate the run time on big traces.
"""

from __future__ import annotations

import re

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def _pattern(key: str) -> str:
    """A JSON ``"key": value`` pair: a string value in group ``s``, anything else in ``n``."""
    return rf'"{re.escape(key)}"\s*:\s*(?:"(?P<s>(?:[^"\\]|\\.)*)"|(?P<n>[-0-9.eE+]+|true|false|\[[^\]]*\]))'


class ArgReader:
    """Reads keys out of the ``args`` column; rows without args give "" without touching text."""

    def __init__(self, args: pa.ChunkedArray, has_args: np.ndarray) -> None:
        self.args = args
        self.has_args = has_args

    def arg_array(self, rows: np.ndarray, key: str) -> pa.Array:
        """Value of ``key`` per row as an Arrow string array ("" when absent)."""
        has = self.has_args[rows]
        if not has.all():
            sub = rows[has]
            if sub.size == 0:
                return pc.fill_null(pa.nulls(rows.size, pa.string()), "")
            pos = np.full(rows.size, -1, dtype=np.int64)
            pos[has] = np.arange(sub.size)
            return pc.fill_null(self.arg_array(sub, key).take(pa.array(pos, mask=pos < 0)), "")
        col = self.args.take(pa.array(rows))
        col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
        ex = pc.extract_regex(col, _pattern(key))
        s = pc.struct_field(ex, "s")
        nn = pc.struct_field(ex, "n")
        return pc.fill_null(pc.if_else(pc.greater(pc.utf8_length(pc.fill_null(s, "")), 0), s, nn), "")

    def arg_values(self, rows: np.ndarray, key: str) -> np.ndarray:
        """Value of ``key`` in the JSON args of the given rows (strings; "" when absent)."""
        if rows.size == 0:
            return np.zeros(0, dtype=object)
        return np.asarray(self.arg_array(rows, key).to_pylist(), dtype=object)

    def arg_codes(self, rows: np.ndarray, key: str) -> tuple[np.ndarray, list[str]]:
        """Like :meth:`arg_values` but dictionary-encoded: (codes, words), "" for absent."""
        if rows.size == 0:
            return np.zeros(0, dtype=np.int32), []
        enc = self.arg_array(rows, key).dictionary_encode()
        return enc.indices.to_numpy(zero_copy_only=False).astype(np.int32), enc.dictionary.to_pylist()
