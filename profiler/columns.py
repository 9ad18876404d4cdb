"""Arrow columns as numpy arrays: the one decoding every reader of a trace table shares.

Analyzers and the dashboard both turn slice columns into numpy arrays; doing it in one place keeps
the conventions identical (a null dictionary entry is code -1, a null float is NaN).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def one_chunk(col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """The column as one Arrow array (dictionaries unified when chunks differ)."""
    if isinstance(col, pa.Array):
        return col
    if col.num_chunks == 1:
        return col.chunk(0)
    if col.num_chunks == 0:
        return pa.array([], type=col.type)
    if pa.types.is_dictionary(col.type):
        return col.unify_dictionaries().combine_chunks()
    return col.combine_chunks()


def numpy_column(col: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """A numeric column as numpy (float nulls become NaN)."""
    return one_chunk(col).to_numpy(zero_copy_only=False)


def dict_codes(col: pa.ChunkedArray | pa.Array, dtype: type = np.int32) -> tuple[np.ndarray, list[str | None]]:
    """(codes with -1 for null, dictionary words) of a string column; codes int32 unless ``dtype``.

    A plain string column is dictionary-encoded first, so callers need not know how it was stored.
    """
    arr = one_chunk(col)
    if not pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_encode()
    words = arr.dictionary.to_pylist()
    idx = arr.indices
    codes = (pc.fill_null(idx, -1) if idx.null_count else idx).to_numpy(zero_copy_only=False)
    return codes.astype(dtype, copy=False), words
