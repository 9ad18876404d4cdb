"""Analytical timing of a GEMM on a systolic array, the way SCALE-Sim v3 counts it.

SCALE-Sim's compute model (``scalesim/compute/systolic_compute_{os,ws,is}.py``) turns a GEMM
``C[M, N] = A[M, K] @ B[K, N]`` into three operand matrices and cuts the two *spatial* dimensions
into array-sized **folds**.  Each fold runs to completion (operands stream in with a diagonal
skew, results drain out) before the next fold starts; folds never overlap.  Reproducing that
arithmetic here lets the simulator's matrix engine time a tile without running SCALE-Sim, and lets
tests check the two against each other cycle for cycle.

With an array of ``R`` rows and ``C`` columns, the per-dataflow mapping is (SCALE-Sim names
in brackets: ``Sr`` spatial rows, ``Sc`` spatial columns, ``T`` temporal length):

=========  ==============  ==============  =============  ===========================
dataflow   Sr (on rows)    Sc (on cols)    T (streamed)   cycles of one fold
=========  ==============  ==============  =============  ===========================
``os``     M               N               K              ``T + R + C - 2``
``ws``     K               N               M              ``T + 2R + C - 2``
``is``     K               M               N              ``T + 2R + C - 2``
=========  ==============  ==============  =============  ===========================

* output stationary: ``T`` operand rows stream in, plus ``R - 1`` cycles of input skew and
  ``C - 1`` cycles for the last partial sums to reach the edge;
* weight/input stationary: ``R`` cycles to load the stationary operand, ``T`` rows to stream,
  ``R - 1`` cycles of skew and ``C - 1`` cycles of drain.

``folds = ceil(Sr / R) * ceil(Sc / C)`` and the GEMM takes ``folds * fold_cycles`` cycles.  A
partially used fold (edge of the matrix) costs as much as a full one: the unused PEs idle, which
is what SCALE-Sim's *mapping efficiency* measures.

SCALE-Sim's COMPUTE_REPORT "Total Cycles" is the index of the cycle in which the last output is
written, counting from cycle 0: without memory stalls it is ``cycles - 1``.  Our functions return
the *number* of cycles (so tile costs add up); :func:`scalesim_reported_cycles` gives the
report's figure for exact comparisons.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

DATAFLOWS = ("os", "ws", "is")


@dataclass(frozen=True)
class SystolicMapping:
    """How one GEMM maps onto the array under one dataflow (all counts in cycles or PEs)."""

    dataflow: str
    rows: int
    cols: int
    spatial_rows: int  # Sr: operand dimension laid along the array rows
    spatial_cols: int  # Sc: operand dimension laid along the array columns
    temporal: int  # T: dimension streamed through the array, one row per cycle
    row_folds: int
    col_folds: int
    fold_cycles: int

    @property
    def folds(self) -> int:
        return self.row_folds * self.col_folds

    @property
    def cycles(self) -> int:
        """Cycles of the whole GEMM, fill and drain of every fold included."""
        return self.folds * self.fold_cycles

    @property
    def macs(self) -> int:
        return self.spatial_rows * self.spatial_cols * self.temporal

    @property
    def mapping_efficiency(self) -> float:
        """Mean fraction of PEs holding work per fold (SCALE-Sim's "Mapping Efficiency" / 100)."""
        if not self.folds:
            return 0.0
        return (self.spatial_rows * self.spatial_cols) / (self.folds * self.rows * self.cols)

    @property
    def compute_utilization(self) -> float:
        """Fraction of PE-cycles doing a MAC over the whole GEMM: MACs / (PEs * cycles)."""
        if not self.folds:
            return 0.0
        return self.macs / (self.folds * self.rows * self.cols * self.fold_cycles)

    @property
    def scalesim_compute_utilization(self) -> float:
        """SCALE-Sim's "Compute Util %" / 100, its quirks included.

        SCALE-Sim averages per-fold ``MACs / (R * C * window)``; for ``os`` the window is the fold
        length, for ``ws``/``is`` it measures the stationary operand's demand matrix, which is
        ``C - 1`` cycles longer than the fold.  Every fold has the same window, so the mean of
        the per-fold ratios is total MACs over ``folds * R * C * window``.
        """
        if not self.folds:
            return 0.0
        window = self.fold_cycles + (0 if self.dataflow == "os" else self.cols - 1)
        return self.macs / (self.folds * self.rows * self.cols * window)


def _check(rows: int, cols: int, dataflow: str, dims: tuple[int, ...]) -> str:
    df = dataflow.lower()
    if df not in DATAFLOWS:
        raise ValueError(f"unknown systolic dataflow {dataflow!r}; expected one of {', '.join(DATAFLOWS)}")
    if rows < 1 or cols < 1:
        raise ValueError(f"systolic array must be at least 1x1, got {rows}x{cols}")
    if any(d < 0 for d in dims):
        raise ValueError(f"GEMM dimensions must be non-negative, got {dims}")
    return df


def fold_cycles(temporal: int, rows: int, cols: int, dataflow: str) -> int:
    """Cycles of one fold that streams ``temporal`` operand rows (see the module table)."""
    df = _check(rows, cols, dataflow, (temporal,))
    if df == "os":
        return temporal + rows + cols - 2
    return temporal + 2 * rows + cols - 2


def systolic_mapping(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> SystolicMapping:
    """Map ``C[m, n] = A[m, k] @ B[k, n]`` onto a ``rows x cols`` array (SCALE-Sim's folding)."""
    df = _check(rows, cols, dataflow, (m, n, k))
    if df == "os":
        sr, sc, t = m, n, k
    elif df == "ws":
        sr, sc, t = k, n, m
    else:  # "is"
        sr, sc, t = k, m, n
    if sr == 0 or sc == 0 or t == 0:
        return SystolicMapping(df, rows, cols, sr, sc, t, 0, 0, 0)
    return SystolicMapping(
        dataflow=df,
        rows=rows,
        cols=cols,
        spatial_rows=sr,
        spatial_cols=sc,
        temporal=t,
        row_folds=math.ceil(sr / rows),
        col_folds=math.ceil(sc / cols),
        fold_cycles=fold_cycles(t, rows, cols, df),
    )


def systolic_tile_cycles(m: int, n: int, k: int, rows: int, cols: int, dataflow: str) -> int:
    """Cycles for the array to compute one ``m x n x k`` tile, fill and drain included.

    A tile larger than the array is folded like SCALE-Sim does; a tile with a zero dimension
    costs nothing.  Summing this over tiles whose spatial edges are multiples of the array size
    gives :func:`systolic_gemm_cycles` of the whole GEMM.
    """
    return systolic_mapping(m, n, k, rows, cols, dataflow).cycles


def systolic_gemm_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str) -> int:  # noqa: N803
    """Compute cycles of a whole ``M x N x K`` GEMM with no memory stalls (SCALE-Sim's model)."""
    return systolic_tile_cycles(M, N, K, rows, cols, dataflow)


def scalesim_reported_cycles(M: int, N: int, K: int, rows: int, cols: int, dataflow: str) -> int:  # noqa: N803
    """The "Total Cycles" SCALE-Sim's COMPUTE_REPORT prints for a stall-free GEMM layer.

    SCALE-Sim reports the (0-based) cycle of the last output write, one less than the count.
    """
    return max(systolic_gemm_cycles(M, N, K, rows, cols, dataflow) - 1, 0)
