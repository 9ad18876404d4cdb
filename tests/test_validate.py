"""Trace.validate checks every invariant profiler/model.py promises; the builder stores parents.

Invalid traces here are made the way a damaged file would carry them: a valid trace's table with
rows swapped, slices moved, or a flow pointing past the slices.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from profiler.builder import TraceBuilder
from profiler.errors import ProfilerError, TraceInvalidError
from profiler.formats import read_trace
from profiler.model import Trace, parents_from_depth
from profiler.schema import TABLE_SCHEMAS

SAMPLES = Path(__file__).resolve().parents[1] / "sample_traces"


def _nested() -> Trace:
    """Track 0: A [0,100) holding B [10,40) (holding C [12,20)) and D [50,90); E [100,120) after A.
    Track 1: F [5,15)."""
    b = TraceBuilder()
    t0 = b.add_track("t0", "compute")
    t1 = b.add_track("t1", "compute")
    for tr, ts, dur, nm in [(t0, 50, 40, "D"), (t0, 0, 100, "A"), (t0, 12, 8, "C"), (t1, 5, 10, "F"),
                            (t0, 100, 20, "E"), (t0, 10, 30, "B")]:
        b.add_slice(tr, ts, dur, nm)
    return b.build()


def _with_slices(t: Trace, **cols: list) -> Trace:
    """The trace with some slice columns replaced (ids stay row positions)."""
    s = t.slices
    for k, v in cols.items():
        f = s.schema.field(k)
        s = s.set_column(s.schema.get_field_index(k), f, pa.array(v, type=f.type))
    return Trace(t.tracks, s, t.counters, t.instants, t.flows, t.metadata)


def test_parent_column_is_stored_by_the_builder() -> None:
    t = _nested()
    names = t.slices["name"].to_pylist()
    assert names == ["A", "B", "C", "D", "E", "F"]  # canonical order: track, ts, longest first
    # By hand: B and D sit in A, C in B; A, E (starts where A ends) and F are top level.
    want = {"A": None, "B": "A", "C": "B", "D": "A", "E": None, "F": None}
    got = t.slices["parent"].to_pylist()
    assert {n: (names[p] if p is not None else None) for n, p in zip(names, got, strict=True)} == want
    assert t.slice_parents().tolist() == [-1, 0, 1, 0, -1, -1]


def test_trace_dirs_without_a_parent_column_still_load(tmp_path: Path) -> None:
    """Trace directories written before the column existed get parents derived from depth."""
    import pyarrow.parquet as pq

    t = _nested()
    d = t.save(tmp_path / "old.trace")
    pq.write_table(t.slices.drop_columns(["parent"]), d / "slices.parquet")
    assert Trace.load(d).slices["parent"].to_pylist() == t.slices["parent"].to_pylist()
    assert parents_from_depth(t.slices["depth"].to_numpy()).tolist() == [-1, 0, 1, 0, -1, -1]


@pytest.mark.parametrize("path", sorted(SAMPLES.glob("*.pftrace")) + sorted(SAMPLES.glob("*.json.gz")), ids=lambda p: p.name)
def test_real_traces_validate(path: Path) -> None:
    t = read_trace(path)
    t.validate()
    assert (t.slices["parent"].is_null().to_numpy(zero_copy_only=False) == (t.slices["depth"].to_numpy() == 0)).all()


def test_unsorted_slices_fail() -> None:
    t = _nested()
    ts = t.slices["ts"].to_pylist()
    # Swap D and E's start times: rows 3 and 4 now run backwards in time (durations kept).
    ts[3], ts[4] = ts[4], ts[3]
    with pytest.raises(TraceInvalidError, match=r"slices row 4.*not sorted"):
        _with_slices(t, ts=ts).validate()


def test_overlapping_top_level_slices_fail() -> None:
    t = _nested()
    dur = t.slices["dur"].to_pylist()
    dur[0] = 110  # A now ends at 110, over E [100,120): two depth-0 slices overlap
    with pytest.raises(TraceInvalidError, match=r"row 4\): overlaps row 0 at depth 0"):
        _with_slices(t, dur=dur).validate()


def test_overlapping_siblings_fail() -> None:
    t = _nested()
    ts = t.slices["ts"].to_pylist()
    ts[3] = 35  # D [35,75) starts inside its sibling B [10,40)
    with pytest.raises(TraceInvalidError, match=r"row 3\): overlaps row 1 at depth 1"):
        _with_slices(t, ts=ts).validate()


def test_child_outside_its_parent_fails() -> None:
    t = _nested()
    dur = t.slices["dur"].to_pylist()
    dur[2] = 40  # C [12,52) ends after its parent B [10,40)
    with pytest.raises(TraceInvalidError, match=r"row 2\): not nested inside its parent \(row 1\)"):
        _with_slices(t, dur=dur).validate()


def test_wrong_depth_or_parent_fails() -> None:
    t = _nested()
    with pytest.raises(TraceInvalidError, match="depth 0 exactly when"):
        _with_slices(t, depth=[0, 0, 2, 1, 0, 0]).validate()
    with pytest.raises(TraceInvalidError, match="same track"):
        _with_slices(t, parent=[None, 0, 1, 0, None, 0], depth=[0, 1, 2, 1, 0, 1]).validate()


def test_flow_past_the_slices_fails_as_bad_input() -> None:
    t = _nested()
    flows = pa.table({"id": [0], "from_slice": [0], "to_slice": [99], "name": [None]}, schema=TABLE_SCHEMAS["flows"])
    bad = Trace(t.tracks, t.slices, t.counters, t.instants, flows, t.metadata)
    with pytest.raises(TraceInvalidError) as err:
        bad.validate(source="run.trace")
    assert str(err.value) == "run.trace (flows row 0): to_slice = 99 is not a slice (there are 6)"
    assert isinstance(err.value, ProfilerError) and isinstance(err.value, ValueError)


def test_add_slice_with_nan_duration_is_dropped_and_counted() -> None:
    """The builder's docstring: NaN durations are dropped and counted by reason."""
    b = TraceBuilder()
    tr = b.add_track("t", "compute")
    b.add_slice(tr, 0, 10, "ok")
    b.add_slice(tr, 20, math.nan, "nan")  # type: ignore[arg-type]
    b.add_slice(tr, 30, -5, "negative")
    b.add_slices(tr, [40, 50], np.array([math.inf, 3.0]), ["inf", "ok2"])
    t = b.build()
    assert t.slices["name"].to_pylist() == ["ok", "ok2"]
    assert t.metadata.import_stats.dropped == {"slice_duration_not_a_number": 2, "slice_negative_duration": 1}
