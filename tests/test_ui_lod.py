"""Server-side level of detail: busy time is conserved, sub-pixel slices merge, views stay small."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from profiler.builder import TraceBuilder
from ui import viewdata as tl
from ui.demo import demo_trace
from ui.lod import TimelineIndex, ViewRow, coverage
from ui.state import LoadedTrace


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5_000), st.integers(0, 3_000)), min_size=1, max_size=60),
       st.integers(0, 2_000), st.integers(1, 8_000), st.integers(1, 300))
def test_coverage_conserves_covered_time(raw: list[tuple[int, int]], t0: int, width: int, nbins: int) -> None:
    # Non-overlapping intervals: sort starts, then cut each one at the next start.
    starts = np.unique(np.array([s for s, _ in raw], dtype=np.int64))
    lengths = np.array([d for _, d in raw[: starts.size]], dtype=np.int64)
    ends = np.minimum(starts + lengths, np.append(starts[1:], 10**9))
    t1 = t0 + width
    cov = coverage(starts, ends, t0, t1, nbins)[0]
    expected = np.clip(np.minimum(ends, t1) - np.maximum(starts, t0), 0, None).sum()
    assert cov.sum() * (t1 - t0) / nbins == pytest.approx(expected, abs=1e-6 * width + 1e-9)
    assert (cov >= -1e-9).all() and (cov <= 1 + 1e-9).all()


def test_coverage_of_one_long_interval_fills_whole_bins() -> None:
    cov = coverage(np.array([25]), np.array([75]), 0, 100, 10)[0]
    assert cov.tolist() == pytest.approx([0, 0, 0.5, 1, 1, 1, 1, 0.5, 0, 0])


def _one_track(ts: np.ndarray, dur: np.ndarray) -> tuple[TimelineIndex, list[ViewRow]]:
    b = TraceBuilder(source_format="test")
    dev = b.add_track("npu0", kind="group")
    eng = b.add_track("mxu", kind="compute", parent=dev)
    b.add_slices(eng, ts, dur, "k")
    return TimelineIndex(b.build()), [ViewRow([eng])]


def test_sub_pixel_slices_merge_into_bins_and_wide_ones_are_bars() -> None:
    # 10,000 slices of 100 ns every 1 us, and one 2 ms slice after them.
    ts = np.append(np.arange(10_000, dtype=np.int64) * 1_000, 20_000_000)
    dur = np.append(np.full(10_000, 100), 2_000_000)
    ix, rows = _one_track(ts, dur)
    v = ix.view(0, 22_000_000, rows, width_px=1000)
    assert v.bar_ids.tolist() == [10_000]  # only the long slice is a bar
    assert v.binned == 10_000
    # The merged bins hold exactly the small slices' busy time.
    assert v.busy.sum() * v.bin_ns == pytest.approx(10_000 * 100)
    # Zoomed to 20 us, the same slices are 5 px wide: all bars, nothing merged.
    z = ix.view(5_000_000, 5_020_000, rows, width_px=1000)
    assert z.bar_ids.size == 20 and z.binned == 0 and z.busy.sum() == 0


@pytest.fixture(scope="module")
def big() -> LoadedTrace:
    return LoadedTrace(0, "demo", demo_trace(200_000, seed=3))


@pytest.mark.parametrize("frac", [(0.0, 1.0), (0.3, 0.35), (0.5, 0.5004)])
def test_bars_plus_bins_equal_top_level_busy_time_per_row(big: LoadedTrace, frac: tuple[float, float]) -> None:
    ix = big.index
    s, e = ix.span
    t0, t1 = int(s + frac[0] * (e - s)), int(s + frac[1] * (e - s))
    rows = tl.rows_for(big, set())
    v = tl.view_of(big, rows, t0, t1, 1200)
    for r, row in enumerate(rows):
        for t in row.view.tracks:
            a, b = ix.ranges[t]
            top = np.arange(a, b)[ix.depth[a:b] == 0]
            busy = np.clip(np.minimum(ix.end[top], t1) - np.maximum(ix.ts[top], t0), 0, None).sum()
            bars = v.bar_ids[(v.bar_rows == r) & (ix.depth[v.bar_ids] == 0)]
            drawn = (np.minimum(ix.end[bars], t1) - np.maximum(ix.ts[bars], t0)).sum()
            assert drawn + (v.busy[r].sum() + v.stall[r].sum()) * v.bin_ns == pytest.approx(busy, rel=1e-9, abs=1e-3)


def test_collapsed_group_row_shows_mean_busy_of_its_tracks(big: LoadedTrace) -> None:
    core0 = next(g for g in big.tree.groups() if big.tree.names[g] == "core0")
    rows = tl.rows_for(big, {core0})
    crow = next(i for i, r in enumerate(rows) if r.kind == "collapsed")
    assert sorted(rows[crow].view.tracks) == sorted(
        t for t in big.tree.descendants(core0) if big.tree.kinds[t] not in ("counter", "group"))
    s, e = big.index.span
    v = tl.view_of(big, rows, s, e, 800)
    assert not np.isin(v.bar_rows, [crow]).any()  # a collapsed group is drawn as bins only
    assert (v.busy[crow] + v.stall[crow]).max() <= 1 + 1e-9
    # Total busy time of the merged row equals the mean busy time of its tracks.
    ix = big.index
    per_track = []
    for t in rows[crow].view.tracks:
        a, b = ix.ranges[t]
        top = np.arange(a, b)[ix.depth[a:b] == 0]
        per_track.append(ix.dur[top].sum())
    assert (v.busy[crow].sum() + v.stall[crow].sum()) * v.bin_ns == pytest.approx(np.mean(per_track), rel=1e-9)


def test_bytes_per_view_are_bounded_whatever_the_trace_size(big: LoadedTrace) -> None:
    small = LoadedTrace(1, "small", demo_trace(20_000, seed=3))
    sizes = {}
    for name, lt in (("small", small), ("big", big)):
        s, e = lt.index.span
        rows = tl.rows_for(lt, set())
        out = []
        for a, b in ((0, 1), (0.2, 0.3), (0.5, 0.501)):
            t0, t1 = int(s + a * (e - s)), int(s + b * (e - s))
            v = tl.view_of(lt, rows, t0, t1, 1400)
            assert v.bar_ids.size <= 3000
            payload = tl.view_payload(lt, rows, t0, t1, 1400, 0, len(rows), tl.name_matcher(lt, "matmul_qkv"))
            out.append(len(json.dumps(payload)))
        sizes[name] = out
    assert max(sizes["big"]) < 2_000_000
    # Ten times the slices does not make the full view even twice as heavy.
    assert sizes["big"][0] < 2 * sizes["small"][0]


def test_counters_are_reduced_to_the_bins(big: LoadedTrace) -> None:
    ix = big.index
    t = next(iter(ix.counters))
    ts, vals = ix.counters[t]
    rows = [ViewRow([], counter_track=t)]
    s, e = ix.span
    v = ix.view(s, e, rows, width_px=100, bin_px=2)
    cts, cv = v.counters[0]
    assert cts.size <= 50 and cv.max() == pytest.approx(vals.max())
    z = ix.view(int(ts[10]) + 1, int(ts[20]), rows, width_px=1000)
    assert z.counters[0][1].tolist() == vals[10:21].tolist()  # the sample before the window carries in


def test_visible_range_matches_brute_force(big: LoadedTrace) -> None:
    ix = big.index
    rng = np.random.default_rng(0)
    s, e = ix.span
    host = next(t for t, k in big.tree.kinds.items() if k == "host")  # nested slices
    for _ in range(50):
        t0 = int(rng.integers(s, e))
        t1 = t0 + int(rng.integers(1, (e - s) // 20))
        a, b = ix.visible_range(host, t0, t1)
        ra, rb = ix.ranges[host]
        want = set(np.flatnonzero((ix.ts[ra:rb] < t1) & (ix.end[ra:rb] > t0)) + ra)
        got = np.arange(a, b)
        got = set(got[ix.end[got] > t0])
        assert got == want


def test_zoomed_out_stalls_are_binned_apart_from_work() -> None:
    """Each microsecond: 100 ns of kernel, then 900 ns waiting on DMA; 1,000 px over 10 ms puts
    ten of each in every bin: 10 % working, 90 % stalled (not 100 % busy)."""
    b = TraceBuilder(source_format="test")
    eng = b.add_track("matrix", kind="compute")
    n = 10_000
    start = np.arange(n, dtype=np.int64) * 1_000
    ts = np.concatenate([start, start + 100])
    dur = np.concatenate([np.full(n, 100), np.full(n, 900)])
    names = ["matmul"] * n + ["wait_dma"] * n
    order = np.argsort(ts, kind="stable")
    b.add_slices(eng, ts[order], dur[order], [names[i] for i in order],
                 category=["kernel" if i < n else "stall" for i in order])
    lt = LoadedTrace(0, "t", b.build())
    rows = tl.rows_for(lt, set())
    r = next(i for i, row in enumerate(rows) if row.track == eng)
    v = tl.view_of(lt, rows, 0, n * 1_000, 1000)
    assert v.bar_ids.size == 0
    assert v.busy[r] == pytest.approx(np.full(v.nbins, 0.1))
    assert v.stall[r] == pytest.approx(np.full(v.nbins, 0.9))
    payload = tl.view_payload(lt, rows, 0, n * 1_000, 1000, 0, len(rows))
    import base64

    bins = next(x for x in payload["bins"] if x["r"] == r)
    assert all(abs(x - 0.1 * 255) <= 1 for x in base64.b64decode(bins["busy"]))
    assert all(abs(x - 0.9 * 255) <= 1 for x in base64.b64decode(bins["stall"]))


def test_memory_tracks_with_samples_are_counter_rows_with_their_unit() -> None:
    """The simulator's SRAM occupancy is a track of kind ``memory`` holding counter samples."""
    b = TraceBuilder(source_format="test")
    core = b.add_track("core0", kind="group")
    b.add_slices(b.add_track("matrix", kind="compute", parent=core), np.array([0]), np.array([10]), "k")
    sram = b.add_track("SRAM", kind="memory", parent=core, attrs={"unit": "bytes", "capacity": 1e6})
    b.add_counters(sram, np.array([0, 5, 9]), np.array([0.0, 4e5, 1e5]))
    lt = LoadedTrace(0, "t", b.build())
    rows = tl.rows_for(lt, set())
    row = next(r for r in rows if r.track == sram)
    assert row.kind == "counter" and row.view.counter_track == sram
    meta = next(m for m in tl.row_meta(lt, rows) if m["track"] == sram)
    assert meta["unit"] == "bytes" and meta["max"] == 4e5
    p = tl.view_payload(lt, rows, 0, 10, 100, 0, len(rows))
    assert p["counters"][0]["v"] == [0.0, 4e5, 1e5]


@pytest.mark.parametrize("max_bars", [50, 3000])
def test_a_view_taken_in_chunks_equals_the_view_taken_at_once(big: LoadedTrace, max_bars: int) -> None:
    """Chunks bound a view's temporaries; they must not change what is drawn (the cap on bars
    included: the widest bars are kept across chunks, the others binned)."""
    ix = big.index
    s, e = ix.span
    rows = [r.view for r in tl.rows_for(big, set())]
    for a, b in [(0.0, 1.0), (0.3, 0.35)]:
        t0, t1 = int(s + a * (e - s)), int(s + b * (e - s))
        once = ix.view(t0, t1, rows, 1200, max_bars=max_bars, chunk=10**9)
        parts = ix.view(t0, t1, rows, 1200, max_bars=max_bars, chunk=997)
        assert 0 < once.bar_ids.size <= max_bars
        if a == 0.3 and max_bars == 50:
            assert once.bar_ids.size == 50  # the cap binds: some wide slices were binned
        assert parts.bar_ids.tolist() == once.bar_ids.tolist() and parts.bar_rows.tolist() == once.bar_rows.tolist()
        np.testing.assert_allclose(parts.busy, once.busy, rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(parts.stall, once.stall, rtol=1e-9, atol=1e-12)
        assert (parts.visible, parts.binned) == (once.visible, once.binned)
