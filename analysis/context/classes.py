"""What each slice is: compute, memory transfer, collective, stall, host work or other.

The class comes from the track's role (what the engine does), refined by the slice's category and
name: a copy kernel on a compute stream is a transfer, an NCCL kernel is communication, a slice
named "wait" is a stall wherever it sits.
"""

from __future__ import annotations

import re

import numpy as np

from analysis.roles import is_dma_slice_name
from profiler.stall_labels import is_stall_category, is_stall_name

#: Per-slice classes (int8 codes in :attr:`analysis.context.AnalysisContext.slice_class`).
COMPUTE, DMA, COMM, STALL, HOST, OTHER = range(6)
CLASS_NAMES = ("compute", "dma", "comm", "stall", "host", "other")

_COMM = re.compile(r"nccl|rccl|all_?reduce|all_?gather|reduce_?scatter|all_?to_?all|broadcast|sendrecv|c10d", re.I)


def class_lut(classes: tuple[int, ...]) -> np.ndarray:
    """Boolean lookup table over class codes (much cheaper than ``np.isin`` on millions)."""
    lut = np.zeros(len(CLASS_NAMES), dtype=bool)
    lut[list(classes)] = True
    return lut


def _word_flags(words: list[str | None], test: object) -> np.ndarray:
    """Per dictionary word flag, plus a trailing False for code -1 (null)."""
    return np.array([bool(w) and bool(test(w)) for w in words] + [False], dtype=bool)  # type: ignore[operator]


def classify(track_roles: np.ndarray, track: np.ndarray,
             categories: tuple[np.ndarray, list[str | None]],
             names: tuple[np.ndarray, list[str | None]]) -> np.ndarray:
    """Class code of every slice (int8), from its track's role, its category and its name."""
    if track.size == 0:
        return np.zeros(0, dtype=np.int8)
    role_code = {"compute": COMPUTE, "dma": DMA, "host": HOST}
    track_cls = np.array([role_code.get(r, OTHER) for r in track_roles], dtype=np.int8)
    cls = track_cls[track]
    cat_codes, cat_words = categories
    name_codes, name_words = names
    stall_cat = _word_flags(cat_words, is_stall_category)
    stall_name = _word_flags(name_words, is_stall_name)
    comm_name = _word_flags(name_words, _COMM.search)
    dma_cat = np.append(is_dma_slice_name(cat_words), False)
    dma_name = np.append(is_dma_slice_name(name_words), False)
    on_engine = (cls == COMPUTE) | (cls == DMA)
    is_dma = on_engine & (dma_cat[cat_codes] | dma_name[name_codes])
    cls = np.where(is_dma, DMA, cls).astype(np.int8)
    cls[(cls == COMPUTE) & comm_name[name_codes]] = COMM
    cls[stall_cat[cat_codes] | stall_name[name_codes]] = STALL
    return cls
