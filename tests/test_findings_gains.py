"""Findings are ranked by gains derived from the trace (and the spec), checked by hand here."""

from __future__ import annotations

import math

from analysis import run_all
from analysis.dma_efficiency import coalescing_gain
from profiler import TraceBuilder
from profiler.hardware import load_spec

US = 1_000


def _unit(dma_busy_us: int | None) -> TraceBuilder:
    """A 100 us run: the matrix engine works 10 us at each end (20 us), optionally one DMA queue."""
    b = TraceBuilder(hardware="edge-npu")
    dev = b.add_track("npu0", kind="group", device="npu0")
    mx = b.add_track("mxu", kind="compute", parent=dev)
    b.add_slice(mx, 0, 10 * US, "gemm", flops=1e6, dtype="int8")
    b.add_slice(mx, 90 * US, 10 * US, "gemm", flops=1e6, dtype="int8")
    if dma_busy_us:
        dma = b.add_track("dma0", kind="dma", parent=dev)
        b.add_slice(dma, 15 * US, dma_busy_us * US, "load", bytes=1e6)
    return b


def _low_util(b: TraceBuilder) -> int:
    report = run_all(b.build(), load_spec("edge-npu"))
    (f,) = [f for f in report.findings if f.kind == "low_utilization"]
    return f.gain_ns


def test_low_utilization_gain_is_bounded_by_the_busiest_engine() -> None:
    # By hand: the run is 100 us, the mxu works 20 us (idle 80 us).  The DMA queue works 70 us, so
    # the run cannot end before 70 us: at most 100 - 70 = 30 us to gain.
    assert _low_util(_unit(70)) == 30 * US


def test_low_utilization_gain_is_the_idle_time_when_nothing_else_limits() -> None:
    # Only the mxu works (20 of 100 us): feeding it could give back all 80 us of idle time.
    assert _low_util(_unit(None)) == 80 * US


def test_coalescing_gain_by_hand() -> None:
    # 100 transfers of 1,000 B; coalesced to >= 16,000 B they are ceil(100,000 / 16,000) = 7 transfers:
    # 93 latencies of 500 ns saved, unless the queue was busy for less.
    assert coalescing_gain(100, 100_000.0, 16_000.0, 500.0, 10**9) == 93 * 500
    assert coalescing_gain(100, 100_000.0, 16_000.0, 500.0, 20_000) == 20_000
    assert coalescing_gain(100, 100_000.0, 16_000.0, 0.0, 10**9) == 0


def test_small_transfers_gain_from_the_spec_latency() -> None:
    spec = load_spec("edge-npu")
    lat, bw = spec.dma.latency_ns, spec.dma.bandwidth
    size = 256  # bytes per transfer: far below latency x bandwidth
    small = lat * 1e-9 * bw
    b = TraceBuilder(hardware="edge-npu")
    dev = b.add_track("npu0", kind="group", device="npu0")
    mx = b.add_track("mxu", kind="compute", parent=dev)
    dma = b.add_track("dma0", kind="dma", parent=dev)
    n, step = 400, 2 * US
    for i in range(n):
        b.add_slice(dma, i * step, US, "load", bytes=float(size))
        b.add_slice(mx, i * step + US, US, "gemm", flops=1e6, dtype="int8")
    report = run_all(b.build(), spec)
    (f,) = [f for f in report.findings if f.kind == "small_transfers"]
    want = min(n * US, (n - math.ceil(n * size / small)) * lat)
    assert f.gain_ns == int(want) and f.gain_ns > 0
