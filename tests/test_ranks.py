"""Several ranks of one job: per-rank table, clocks aligned on collectives, stragglers, merged trace.

Ground truth comes from the raw Kineto JSON of the two real ranks (read here with plain ``json``)
and from hand-built traces whose times are chosen by hand.
"""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from analysis import run_all
from analysis.ranks import RankError, analyze_ranks, assign_ranks
from profiler.builder import TraceBuilder
from profiler.formats import read_trace
from profiler.merge import merge, shifted
from profiler.tracesets import TraceSetError, expand

DATA = Path(__file__).parent / "data" / "kineto"
RANKS = [DATA / "two_ranks_rank0.json.gz", DATA / "two_ranks_rank1.json.gz"]


@pytest.fixture(scope="module")
def two_ranks():
    return [read_trace(p) for p in RANKS]


def _raw_nccl_kernels(path: Path) -> list[dict]:
    doc = json.load(gzip.open(path))
    return sorted((e for e in doc["traceEvents"] if e.get("cat") == "kernel" and "nccl" in e["name"].lower()),
                  key=lambda e: e["ts"])


def test_ranks_come_from_distributed_info(two_ranks):
    # the files say rank 0 and rank 1 of 128 in their distributedInfo header
    assert assign_ranks(two_ranks[::-1], [str(p) for p in RANKS[::-1]]) == [1, 0]
    rep = analyze_ranks(two_ranks, [str(p) for p in RANKS])
    assert rep.ranks == [0, 1] and rep.summary["world_size"] == 128


def test_file_name_is_the_fallback_and_duplicates_fail(tmp_path):
    b = TraceBuilder(source="job_rank7.json")
    b.add_slice(b.add_track("stream 7", "compute"), 0, 10, "k")
    t = b.build()
    assert assign_ranks([t], ["job_rank7.json"]) == [7]
    with pytest.raises(RankError, match="rank 7"):
        assign_ranks([t, t], ["a_rank7.json", "b_rank7.json"])


def test_per_rank_breakdown_equals_the_single_rank_analyzer_and_the_merged_trace(two_ranks):
    rep = analyze_ranks(two_ranks, [str(p) for p in RANKS])
    merged = run_all(merge(two_ranks, ["rank 0", "rank 1"]))
    merged_dev = {d["device"]: d for d in merged.results["overlap"].summary["devices"]}
    for r, t in zip((0, 1), two_ranks, strict=True):
        (dev,) = run_all(t).results["overlap"].summary["devices"]
        row = rep.per_rank.set_index("rank").loc[r]
        for key in ("span_ns", "idle_ns", "compute_ns", "comm_ns", "comm_exposed_ns"):
            assert row[key] == dev[key], key
            # the merged trace (one group per rank) gives each rank's device the same numbers
            assert merged_dev[f"rank {r} / {dev['device']}"][key] == dev[key], key
        assert row["idle_pct"] + row["compute_pct"] + (100 * (dev["non_compute_ns"]) / dev["span_ns"]) == \
            pytest.approx(100.0)


def test_collectives_matched_with_the_skew_read_from_the_raw_events(two_ranks):
    rep = analyze_ranks(two_ranks, [str(p) for p in RANKS])
    k0, k1 = _raw_nccl_kernels(RANKS[0]), _raw_nccl_kernels(RANKS[1])
    # By hand from the raw events: rank 0's second NCCL kernel and rank 1's first end at the same
    # microsecond (1682725898187835): the same all-to-all.  Rank 1 started it 4,859 us later.
    assert k0[1]["ts"] + k0[1]["dur"] == k1[0]["ts"] + k1[0]["dur"] == 1682725898187835
    first = rep.collectives.iloc[0]
    assert first["kind"] == "all_to_all"
    assert first["skew_ns"] == (k1[0]["ts"] - k0[1]["ts"]) * 1000 == 4_859_000
    assert first["last_rank"] == 1
    assert rep.offsets_ns == {0: 0, 1: 0}
    assert rep.summary["collectives_matched"] == len(rep.collectives) >= 5
    # every matched pair ends within the tolerance on the common clock
    assert (rep.collectives["skew_ns"] >= 0).all()


def test_bus_bandwidth_of_an_all_reduce_by_hand(two_ranks):
    rep = analyze_ranks(two_ranks, [str(p) for p in RANKS])
    ar = rep.collectives[rep.collectives["kind"] == "all_reduce"].iloc[0]
    # nccl:all_reduce's Input Dims [[19618307]] of float: 78,473,228 bytes; NCCL tests' bus factor
    # for all-reduce on n = 128 ranks is 2 (n - 1) / n.
    assert ar["bytes"] == 19618307 * 4
    algbw = ar["bytes"] / (ar["transfer_ns"] / 1e9)
    assert ar["algbw"] == pytest.approx(algbw)
    assert ar["busbw"] == pytest.approx(algbw * 2 * 127 / 128)


@pytest.mark.parametrize("delta_ns", [2_500_000_000, -7_000_000_123])
def test_clock_offset_recovered_and_matches_unchanged(two_ranks, delta_ns):
    base = analyze_ranks(two_ranks, [str(p) for p in RANKS])
    moved = analyze_ranks([two_ranks[0], shifted(two_ranks[1], delta_ns)], [str(p) for p in RANKS])
    assert abs(moved.offsets_ns[1] - delta_ns) <= 1_000_000  # within the matching tolerance
    cols = ["group", "kind", "skew_ns", "last_rank"]
    assert moved.collectives[cols].equals(base.collectives[cols])


def _job(late_rank: int, late_ns: int, n_ranks: int = 3, n_coll: int = 3):
    """Ranks whose all-reduces start together except ``late_rank``'s, and end together."""
    traces = []
    for r in range(n_ranks):
        b = TraceBuilder(source=f"job_rank{r}.json")
        b.metadata.extra["distributedInfo"] = {"rank": r, "world_size": n_ranks}
        dev = b.add_track(f"GPU {r}", "group", device=f"GPU {r}")
        s = b.add_track("stream 13", "compute", parent=dev)
        for c in range(n_coll):
            start = 1_000_000 + c * 50_000_000 + (late_ns if r == late_rank else 0)
            end = 1_000_000 + c * 50_000_000 + late_ns + 5_000_000
            b.add_slice(s, 1_000_000 + c * 50_000_000 - 20_000_000, 19_000_000, "gemm")
            b.add_slice(s, start, end - start, "ncclDevKernel_AllReduce_Sum_f32_RING_LL")
        traces.append(b.build())
    return traces


def test_straggler_found_with_the_wait_it_causes():
    traces = _job(late_rank=2, late_ns=10_000_000)
    rep = analyze_ranks(traces, [f"job_rank{r}.json" for r in range(3)])
    st = rep.stragglers.set_index("rank")
    assert st.loc[2, "times_last"] == 3 and st.loc[0, "times_last"] == 0
    # each of 3 collectives: the two others waited 10 ms each -> 10 ms per collective
    assert st.loc[2, "caused_wait_ns"] == 3 * 10_000_000
    assert (rep.collectives["skew_ns"] == 10_000_000).all()
    (f,) = [f for f in rep.findings if f.kind == "straggler_rank"]
    assert "rank 2" in f.title and f.gain_ns == 30_000_000


def test_merged_trace_keeps_the_model_invariants(two_ranks):
    m = merge(two_ranks, ["rank 0", "rank 1"], [0, 1_000])
    m.validate()
    assert m.slices.num_rows == sum(t.slices.num_rows for t in two_ranks)
    assert m.flows.num_rows == sum(t.flows.num_rows for t in two_ranks)
    roots = m.tracks.filter(np.isnan(m.tracks["parent"].to_numpy(zero_copy_only=False).astype(float)))
    assert roots["name"].to_pylist() == ["rank 0", "rank 1"]
    # rank 1's slices moved 1 us back onto rank 0's clock
    first1 = int(np.min(two_ranks[1].slices["ts"].to_numpy()))
    off = two_ranks[0].slices.num_rows
    assert int(m.slices["ts"].to_numpy()[off:].min()) == first1 - 1_000


def test_expand_folders_and_globs(tmp_path):
    (tmp_path / "run1").mkdir()
    for p in RANKS:
        shutil.copy(p, tmp_path / "run1" / p.name)
    (tmp_path / "run1" / "notes.txt").write_text("not a trace")
    assert [p.name for p in expand([str(tmp_path)])] == [p.name for p in RANKS]
    assert len(expand([str(tmp_path / "run1" / "*.json.gz"), str(tmp_path)])) == 2  # each once
    with pytest.raises(TraceSetError, match="no trace"):
        expand([str(tmp_path / "*.pftrace")])


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True, timeout=300)


def test_cli_analyze_several_traces(tmp_path):
    r = _cli("analyze", *map(str, RANKS))
    assert r.returncode == 0, r.stderr
    assert "2 ranks of 128" in r.stdout and "Stragglers" in r.stdout and "all_to_all" in r.stdout
    r = _cli("analyze", *map(str, RANKS), "--format", "json")
    doc = json.loads(r.stdout)
    assert [x["rank"] for x in doc["per_rank"]] == [0, 1]
    budget = tmp_path / "b.toml"
    budget.write_text("idle_pct_max = 1\n")
    r = _cli("analyze", *map(str, RANKS), "--budget", str(budget))
    assert r.returncode == 1 and "rank 0" in r.stderr and "Traceback" not in r.stderr
    r = _cli("analyze", str(RANKS[0]), str(RANKS[0].with_name("missing_rank5.json")))
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_info_lists_each_trace_with_its_rank(tmp_path):
    for p in RANKS:
        shutil.copy(p, tmp_path / p.name)
    r = _cli("info", "--json", str(tmp_path))
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert [(d["rank"], d["world_size"]) for d in doc] == [(0, 128), (1, 128)]


def test_merged_job_aligns_the_ranks_clocks(two_ranks):
    from analysis.ranks import merged_job

    late = shifted(two_ranks[1], 3_000_000_000)
    m = merged_job([late, two_ranks[0]], [str(RANKS[1]), str(RANKS[0])])
    m.validate()
    assert m.metadata.extra["ranks"] == [0, 1]
    parts = m.metadata.extra["parts"]
    assert [p["label"] for p in parts] == ["rank 0", "rank 1"]
    assert abs(parts[1]["offset_ns"] - 3_000_000_000) <= 1_000_000
    # rank 1 back on rank 0's clock: its first slice where the unshifted file has it (within the tolerance)
    off = parts[1]["slice_offset"]
    assert abs(int(m.slices["ts"].to_numpy()[off:].min()) - int(two_ranks[1].slices["ts"].to_numpy().min())) <= 1_000_000


def test_sql_over_several_traces_counts_what_the_raw_files_hold(tmp_path):
    r = _cli("sql", *map(str, RANKS), "SELECT rank, count(*) AS n FROM slices_x WHERE track_kind = 'compute' "
             "GROUP BY rank ORDER BY rank", "--json", "--cache", str(tmp_path / "cache"))
    assert r.returncode == 0, r.stderr
    raw = [sum(1 for e in json.load(gzip.open(p))["traceEvents"] if e.get("cat") == "kernel") for p in RANKS]
    assert json.loads(r.stdout) == [{"rank": 0, "n": raw[0]}, {"rank": 1, "n": raw[1]}]
    # ids are per trace: flows join their slices on (trace, id) and every flow finds its slice
    r = _cli("sql", str(DATA / "two_ranks_rank*.json.gz"),
             "SELECT f.trace, count(s.id) AS joined, count(*) AS flows FROM flows f LEFT JOIN slices s "
             "ON f.trace = s.trace AND f.to_slice = s.id GROUP BY 1 ORDER BY 1", "--json", "--cache", str(tmp_path / "cache"))
    rows = json.loads(r.stdout)
    assert len(rows) == 2 and all(x["joined"] == x["flows"] > 0 for x in rows)
    assert len(list((tmp_path / "cache").glob("*.trace"))) == 2  # each file imported once


def test_bus_bandwidth_against_the_specs_link_peak_and_the_ring_algorithm(two_ranks):
    from profiler.hardware import load_spec

    rep = analyze_ranks(two_ranks, [str(p) for p in RANKS], load_spec("a100-sxm"))
    ar = rep.collectives[rep.collectives["kind"] == "all_reduce"].iloc[0]
    # the a100-sxm preset's NVLink: 300 GB/s per direction; the kernel names say RING
    assert ar["busbw_pct_of_link"] == pytest.approx(100 * ar["busbw"] / 300e9)
    assert set(rep.collectives["algorithm"]) == {"ring"}
