"""Frequent kernel sequences: runs of kernels that repeat on a stream, the candidates for fusion.

A sequence of ``n`` kernels that follows the same order hundreds of times (elementwise op, then
a reduction, then another elementwise op) costs ``n`` launches and ``n`` round trips through memory
each time; fused, it costs one.  Like HolisticTraceAnalysis' ``get_frequent_cuda_kernel_sequences``
this counts consecutive kernel-name sequences per stream; unlike it, it searches every length from
``min_len`` to ``max_len`` on integer codes (a rolling hash over the name codes, one sort per
length), and it needs no operator name to start from.

A sequence counts each place it starts (occurrences may overlap), only within one stream.  A
sequence is dropped when a longer one containing it occurs as often: the longer run is the
fusion candidate.  Ranked by launches a fusion would save, ``count x (n - 1)``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from analysis.context import COMM, COMPUTE, AnalysisContext
from analysis.device_ops import device_ops
from analysis.findings import AnalyzerResult

NAME = "kernel_sequences"
MIN_LEN, MAX_LEN = 2, 8
MIN_COUNT = 5
TOP_K = 20
COLUMNS = ["sequence", "length", "count", "launches_saved", "total_ns", "mean_kernel_ns", "streams"]


_P = np.uint64(1_000_003)


def _streams_per_key(inv: np.ndarray, stream: np.ndarray, n_keys: int) -> np.ndarray:
    """How many distinct streams each key occurs on (sort + compare)."""
    if stream.size == 0:
        return np.zeros(n_keys, dtype=np.int64)
    radix = int(stream.max()) + 1
    pair = np.sort(inv.astype(np.int64) * radix + stream)
    pair = pair[np.concatenate([[True], pair[1:] != pair[:-1]])]
    return np.bincount(pair // radix, minlength=n_keys)


def sequences(ctx: AnalysisContext, min_len: int = MIN_LEN, max_len: int = MAX_LEN,
              min_count: int = MIN_COUNT, limit: int | None = None) -> pd.DataFrame:
    """Kernel sequences occurring at least ``min_count`` times (before dropping contained ones).

    A window is keyed by a rolling polynomial hash of its name codes (uint64, grown one kernel
    per length), so each length costs one pass and one sort.  ``limit`` keeps, per length, only
    the most frequent sequences (what ranking needs).
    """
    ops = device_ops(ctx)
    cls = ctx.slice_class[ops.rows]
    k = (cls == COMPUTE) | (cls == COMM)
    rows, stream = ops.rows[k], ops.stream[k]
    codes = ctx.name_code[rows].astype(np.int64)
    cum = np.concatenate([[0], np.cumsum(ctx.dur[rows].astype(np.int64))])
    words = [*ctx.name_words, ""]
    out: list[dict[str, object]] = []
    n_ops = int(codes.size)
    # Last position of each op's stream: a window of length n from p stays in one stream when
    # p + n - 1 <= last[p].
    brk = np.flatnonzero(np.diff(stream) != 0)
    last = np.repeat(np.append(brk, n_ops - 1), np.diff(np.concatenate([[0], brk + 1, [n_ops]]))) \
        if n_ops else np.zeros(0, dtype=np.int64)
    h = np.zeros(n_ops, dtype=np.uint64)  # hash of the window starting at each position
    with np.errstate(over="ignore"):
        for j in range(min(max_len, n_ops)):
            n = j + 1
            h = h[: n_ops - j] * _P + codes[j:].astype(np.uint64) + np.uint64(1)
            if n < min_len:
                continue
            pos = np.flatnonzero(np.arange(n_ops - j) + j <= last[: n_ops - j])
            if pos.size == 0:
                break
            uniq, first, inv, cnt = np.unique(h[pos], return_index=True, return_inverse=True, return_counts=True)
            inv = inv.reshape(-1)
            keep = np.flatnonzero(cnt >= min_count)
            if keep.size == 0:
                break  # a longer run cannot be more frequent than all of its prefixes
            if limit is not None and keep.size > limit:
                keep = keep[np.argsort(-cnt[keep], kind="stable")[:limit]]
            time = np.bincount(inv, weights=(cum[pos + n] - cum[pos]).astype(float), minlength=uniq.size)
            n_streams = _streams_per_key(inv, stream[pos], uniq.size)
            for u in keep.tolist():
                p0 = int(pos[first[u]])
                seq = tuple(codes[p0:p0 + n].tolist())
                out.append({"sequence": " -> ".join(str(words[c] or "") for c in seq), "codes": seq,
                            "length": n, "count": int(cnt[u]), "launches_saved": int(cnt[u]) * (n - 1),
                            "total_ns": int(time[u]), "mean_kernel_ns": float(time[u] / (cnt[u] * n)),
                            "streams": int(n_streams[u])})
    return pd.DataFrame(out, columns=[*COLUMNS, "codes"])


def _contained(short: tuple[int, ...], long: tuple[int, ...]) -> bool:
    n = len(short)
    return any(long[i:i + n] == short for i in range(len(long) - n + 1))


def analyze(ctx: AnalysisContext) -> AnalyzerResult:
    df = sequences(ctx, int(ctx.options.get("sequence_min_len") or MIN_LEN),
                   int(ctx.options.get("sequence_max_len") or MAX_LEN),
                   int(ctx.options.get("sequence_min_count") or MIN_COUNT), limit=10 * TOP_K)
    if len(df):
        # Drop a run contained in a longer one that occurs as often (the longer one is the candidate).
        by_count: dict[int, list[tuple[int, ...]]] = {}
        for r in df.itertuples(index=False):
            by_count.setdefault(int(r.count), []).append(r.codes)
        drop = [any(len(o) > len(r.codes) and _contained(r.codes, o) for o in by_count[int(r.count)])
                for r in df.itertuples(index=False)]
        df = df[~np.array(drop)]
        df = df.sort_values(["launches_saved", "total_ns"], ascending=False).head(TOP_K)
    metrics = df[COLUMNS].reset_index(drop=True)
    summary = {"candidates": int(len(metrics)),
               "top": metrics.iloc[0]["sequence"] if len(metrics) else None,
               "launches_saved_top": int(metrics.iloc[0]["launches_saved"]) if len(metrics) else 0}
    return AnalyzerResult(NAME, [], metrics, summary)
