"""What-if sweeps: monotone where physics says so, the Pareto front on a hand-made table, mixed precision."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys

import pytest

from collectors.simulator import CnnEncoder, Gemm, LlmDecodeStep, ModelConfig
from collectors.simulator.sweep import LayerDtypes, pareto_front, precision_gains, run_point, run_sweep
from profiler.hardware import load_spec

EDGE = load_spec("edge-npu")
SMALL = LlmDecodeStep(ModelConfig(layers=2, hidden=1024, heads=16, ffn=2816, seq_len=512))


def test_pareto_front_on_a_hand_made_table():
    rows = [
        {"name": "a", "cost": 1, "latency_ns": 10},
        {"name": "b", "cost": 2, "latency_ns": 12},  # dearer and slower than a: dominated
        {"name": "c", "cost": 2, "latency_ns": 6},
        {"name": "d", "cost": 3, "latency_ns": 6},  # as fast as c but dearer: dominated
        {"name": "e", "cost": 4, "latency_ns": 5},
        {"name": "f", "cost": 0.5, "latency_ns": None, "error": "no fp8"},  # failed points never count
        {"name": "g", "cost": 1, "latency_ns": 11},  # as cheap as a but slower: dominated
    ]
    assert [r["name"] for r in pareto_front(rows, "cost")] == ["a", "c", "e"]


#: (id, workload, preset, (higher, lower) precision: the lower one's peak is at least the higher one's)
MONOTONE_CASES = [
    ("edge-npu decode", SMALL, "edge-npu", ("fp16", "int8")),
    ("edge-npu cnn", CnnEncoder(), "edge-npu", ("fp16", "int8")),
    ("h100 gemm", Gemm(M=256, N=4096, K=1024), "h100-sxm", ("fp16", "int8")),
    ("a100 gemm", Gemm(M=512, N=1024, K=2048), "a100-sxm", ("fp16", "int8")),
    # a GEMV split over the SMs by columns: the planner re-picks its tiles at each bandwidth
    ("h100 gemv", Gemm(M=1, N=11008, K=2816), "h100-sxm", ("fp16", "int8")),
    ("dojo-tile gemm", Gemm(M=1024, N=1024, K=1024), "dojo-tile", ("bf16", "fp8")),
    ("dojo-tile decode", SMALL, "dojo-tile", ("bf16", "fp8")),
]
SRAM_CASES = [*MONOTONE_CASES,
              # with more SRAM the planner picks other tiles for int8, 0.3 % slower (580.1 -> 582.1 us)
              ("edge-npu gemm", Gemm(M=2048, N=3072, K=2816), "edge-npu", ("fp16", "int8"))]
MONOTONE_CASES += [
    # alone the mapper picks a dimension split at high bandwidth that runs 2x slower than its plan
    # at the spec's bandwidth (fp16: 97 us at 1.6 TB/s, 229 us at 6.6 TB/s); int8's peak equals fp16's
    ("mi210 gemm", Gemm(M=512, N=4096, K=2048), "mi210", ("fp16", "int8")),
    # the planner's plan at 68 GB/s keeps a strip of A resident; re-planned at 136 GB/s it is slower
    ("edge-npu gemm", Gemm(M=512, N=11008, K=4096), "edge-npu", ("fp16", "int8")),
]


def _assert_monotone(rows, key, dtypes):
    """Latency never grows along the (growing) values of ``key``; the lower precision never slower."""
    assert not any(r["error"] for r in rows), [r["error"] for r in rows if r["error"]]
    for d in dtypes:
        lat = [r["latency_ns"] for r in rows if r["dtype"] == d]
        assert all(b <= a for a, b in zip(lat, lat[1:], strict=False)), (key, d, lat)
    for hi, lo in zip(rows[::2], rows[1::2], strict=True):
        assert (hi["dtype"], lo["dtype"]) == dtypes
        assert lo["latency_ns"] <= hi["latency_ns"], (key, hi[key], hi["latency_ns"], lo["latency_ns"])


@pytest.mark.parametrize("case", MONOTONE_CASES, ids=[c[0] for c in MONOTONE_CASES])
def test_more_dram_bandwidth_is_never_slower_and_a_faster_precision_never_slower(case):
    """Exactly, with the default mapper: it re-plans every point, and a plan one point found is tried at all
    (each plan's time only falls as bandwidth grows, so the best of a common set does too)."""
    _, w, preset, dtypes = case
    spec = load_spec(preset)
    assert spec.peak(dtypes[1]) >= spec.peak(dtypes[0])  # edge-npu int8 73.7 vs fp16 18.4 TOPS, h100 2x ...
    bws = [f"{spec.dram.bandwidth * f:g}" for f in (0.25, 0.5, 1, 2, 3, 4)]
    _assert_monotone(run_sweep(w, spec, {"dram_bandwidth": bws}, list(dtypes), jobs=1), "dram_bandwidth", dtypes)


@pytest.mark.parametrize("case", SRAM_CASES, ids=[c[0] for c in SRAM_CASES])
def test_more_sram_is_never_slower(case):
    _, w, preset, dtypes = case
    spec = load_spec(preset)
    per_core = spec.sram.capacity / spec.cores
    srams = [f"{per_core * f:g}" for f in (0.25, 0.5, 1, 2)]
    _assert_monotone(run_sweep(w, spec, {"sram_bytes": srams}, list(dtypes), jobs=1), "sram_bytes", dtypes)


def test_a_point_runs_the_faster_plan_another_point_found_and_says_so(monkeypatch):
    # a GEMM on h100-sxm: alone, the mapper's estimate picks a dimension split at 3x and 4x the DRAM
    # bandwidth that simulates ~1.7x slower than the tiled plan it picks at 2x.  (This GEMM is small
    # enough that the mapper now confirms its best few plans by simulation and finds the tiled plan
    # itself; the estimate alone is what it goes by for ops past that budget, so that is set here.)
    from collectors.simulator import mapper

    monkeypatch.setattr(mapper, "SMALL_OP_INSTRUCTIONS", 3000)
    monkeypatch.setattr(mapper, "_CACHE", {})
    spec = load_spec("h100-sxm")
    g = Gemm(M=256, N=4096, K=1024)
    bws = [f"{spec.dram.bandwidth * f:g}" for f in (2, 3, 4)]
    own = run_sweep(g, spec, {"dram_bandwidth": bws}, ["fp16"], jobs=1, share_plans=False)
    shared = run_sweep(g, spec, {"dram_bandwidth": bws}, ["fp16"], jobs=1)
    assert own[1]["latency_ns"] > own[0]["latency_ns"]  # why plans are shared
    assert [r["shared_plans"] for r in own] == [0, 0, 0]
    assert [r["shared_plans"] for r in shared] == [0, 1, 1]
    plan = [r["mappings"][0]["plan"].split(" (")[0] for r in shared]  # the plan without how it was found
    assert plan[1] == plan[2] == plan[0] != own[1]["mappings"][0]["plan"].split(" (")[0]
    assert [r["mappings"][0]["found"] for r in shared] == ["this point", "another point", "another point"]
    assert shared[0]["latency_ns"] == own[0]["latency_ns"]  # a point whose own plan is best keeps its row
    assert shared[2]["latency_ns"] <= shared[1]["latency_ns"] <= shared[0]["latency_ns"]


def test_a_fixed_mapping_is_exactly_monotone_too():
    bws = ["17e9", "34e9", "68e9", "136e9", "272e9"]
    rows = run_sweep(SMALL, EDGE, {"dram_bandwidth": bws}, ["fp16", "int8"], {"mapper": "off"}, jobs=1)
    _assert_monotone(rows, "dram_bandwidth", ("fp16", "int8"))


def test_a_point_that_cannot_run_is_a_row_with_its_error_and_pools_match_serial():
    rows = run_sweep(SMALL, EDGE, {"layers": ["1", "2"]}, ["int8", "fp8"], jobs=2)
    assert [r["dtype"] for r in rows] == ["int8", "fp8", "int8", "fp8"]
    assert all(r["error"] and "fp8" in r["error"] for r in rows if r["dtype"] == "fp8")
    serial = run_sweep(SMALL, EDGE, {"layers": ["1", "2"]}, ["int8", "fp8"], jobs=1)
    assert [r.get("latency_ns") for r in rows] == [r.get("latency_ns") for r in serial]
    one = next(r for r in rows if r["dtype"] == "int8" and r["layers"] == "1")
    two = next(r for r in rows if r["dtype"] == "int8" and r["layers"] == "2")
    assert two["latency_ns"] > one["latency_ns"]


def test_layer_dtype_map_lands_between_the_uniform_precisions():
    fp16 = run_point(SMALL, EDGE, {}, "fp16")["latency_ns"]
    int8 = run_point(SMALL, EDGE, {}, "int8")["latency_ns"]
    mixed_w = LayerDtypes(SMALL, (("layer0.*", "int8"),))
    mixed = run_point(mixed_w, EDGE, {}, "fp16")["latency_ns"]
    assert int8 < mixed < fp16
    from collectors.simulator import simulate

    t = simulate(mixed_w, EDGE, dtype="fp16", detail="summary").trace.slices_df()
    mm = t[t["track_name"].str.contains("matrix")]
    by_op = dict(zip(mm["name"], mm["dtype"], strict=False))
    assert by_op["layer0.qkv"] == "int8" and by_op["layer1.qkv"] == "fp16"


def test_precision_gains_rank_the_weight_streaming_matmuls_first():
    gains = precision_gains(SMALL, EDGE, "fp16", "int8", top=4)
    # decode matmuls stream their weights from LPDDR: int8 weights are half the bytes of fp16
    assert all("ffn" in g["op"] or "qkv" in g["op"] for g in gains)
    assert all(35 <= g["gain_pct"] <= 55 for g in gains)


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True, timeout=600)


def test_cli_sweep_tables_and_chart(tmp_path):
    chart = tmp_path / "p.html"
    r = _cli("sweep", "llm-decode", "--hw", "edge-npu", "--set", "layers=1", "--vary", "dram_bandwidth=34e9,68e9",
             "--dtype", "fp16,int8", "--format", "csv", "--chart", str(chart), "--jobs", "2")
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(io.StringIO(r.stdout)))
    assert len(rows) == 4 and {x["dtype"] for x in rows} == {"fp16", "int8"}
    assert sum(x["pareto"] == "True" for x in rows) >= 1
    assert "Pareto front" in chart.read_text()
    r = _cli("sweep", "llm-decode", "--hw", "edge-npu", "--set", "layers=1", "--vary", "sram_bytes=8e6,16e6",
             "--format", "json", "--cost", "sram_bytes")
    doc = json.loads(r.stdout)
    assert [p["sram_bytes"] for p in doc["points"]] == [8e6 * 2, 16e6 * 2]  # per core x 2 cores
    # every point's GEMM plans beside the points (the 1-layer decode step: 4 GEMM shapes)
    assert {p["point"] for p in doc["plans"]} == {0, 1}
    assert {p["op"] for p in doc["plans"] if p["point"] == 0} >= {"layer0.qkv", "layer0.ffn_down"}
    assert all(p["found"] in ("this point", "another point") for p in doc["plans"])
    assert all("mappings" not in p and p["shared_plans"] >= 0 for p in doc["points"])
    r = _cli("sweep", "llm-decode", "--vary", "dram_bandwidth")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_layer_dtype_map(tmp_path):
    base = ["sweep", "llm-decode", "--hw", "edge-npu", "--vary", "layers=2", "--format", "json"]
    lat = {}
    for name, extra in (("fp16", ["--dtype", "fp16"]), ("int8", ["--dtype", "int8"]),
                        ("mixed", ["--dtype", "fp16", "--layer-dtype", "layer0.*=int8"])):
        r = _cli(*base, *extra)
        assert r.returncode == 0, r.stderr
        lat[name] = json.loads(r.stdout)["points"][0]["latency_ns"]
    assert lat["int8"] < lat["mixed"] < lat["fp16"]
    r = _cli(*base, "--layer-dtype", "nonsense")
    assert r.returncode == 2 and "PATTERN=DTYPE" in r.stderr
