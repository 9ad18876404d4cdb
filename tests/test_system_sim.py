"""The multi-device simulator against hand calculations: collectives, tensor and pipeline parallelism.

Every expected time below is worked by hand from the algorithm (steps x per-step time) and the
system figures given in the test, not read back from the simulator.
"""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest

from collectors.simulator.system import Collective, MoeLlm, ParallelLlm, simulate_system
from collectors.simulator.system.parallel import _layer_ops, op_times
from collectors.simulator.workloads import ModelConfig
from profiler.hardware import load_spec
from profiler.system import SystemSpec, TopologyError

A100 = load_spec("a100-sxm")
B = 300e9  # bytes/s per direction
LAT = 1000.0  # ns per hop
SWITCH = {"topology": "switch", "link_bandwidth": B, "link_latency_ns": LAT}


def _ring_allreduce_ns(S: float, N: int, hops: int) -> float:
    # 2(N-1) steps, each moving S/N to the ring successor: 2(N-1)/N * S / B plus the hop latencies
    return 2 * (N - 1) / N * S / B * 1e9 + 2 * (N - 1) * hops * LAT


@pytest.mark.parametrize("n", [2, 4, 8])
def test_ring_allreduce_takes_2_n_minus_1_over_n_bytes_over_bandwidth(n):
    S = 1 << 30
    res = simulate_system(Collective("all_reduce", bytes=S, devices=n), A100, system=SWITCH)
    assert res.total_ns == pytest.approx(_ring_allreduce_ns(S, n, hops=2), abs=2)  # switch: up + down
    ring = simulate_system(Collective("all_reduce", bytes=S, devices=n), A100, system={**SWITCH, "topology": "ring"})
    assert ring.total_ns == pytest.approx(_ring_allreduce_ns(S, n, hops=1), abs=2)


def test_other_collectives_by_hand():
    S, n = 64 << 20, 4
    ag = simulate_system(Collective("all_gather", bytes=S, devices=n), A100, system=SWITCH)
    assert ag.total_ns == pytest.approx((n - 1) / n * S / B * 1e9 + (n - 1) * 2 * LAT, abs=2)
    tree = simulate_system(Collective("all_reduce", bytes=S, devices=n, algorithm="tree"), A100, system=SWITCH)
    # binary tree 0 <- (1, 2), 1 <- 3; 2 ceil(log2 4) = 4 lockstep steps: 3->1, then 1->0 and 2->0
    # sharing device 0's switch port (twice the bytes' time), then the broadcast back the same way
    assert math.ceil(math.log2(n)) == 2
    t = S / B * 1e9
    assert tree.total_ns == pytest.approx((t + 2 * LAT) + (2 * t + 2 * LAT) + (2 * t + 2 * LAT) + (t + 2 * LAT), abs=3)
    # all-to-all on a 4-device ring: step 1 and 3 go one hop; step 2 goes two hops and every
    # directed link carries two transfers at once, so it takes twice the bytes' time
    a2a = simulate_system(Collective("all_to_all", bytes=S, devices=n), A100, system={**SWITCH, "topology": "ring"})
    chunk = S / n / B * 1e9
    assert a2a.total_ns == pytest.approx((chunk + LAT) + (2 * chunk + 2 * LAT) + (chunk + LAT), abs=3)


def test_mesh_routes_dimension_order_and_rejects_a_bad_grid():
    mesh = SystemSpec(devices=6, topology="mesh2d", link_bandwidth=1e12, rows=2)
    assert mesh.grid == (2, 3)
    assert mesh.route(0, 5) == [(0, 1), (1, 2), (2, 5)]  # X first along row 0, then down
    torus = SystemSpec(devices=16, topology="torus2d", link_bandwidth=1e12)
    assert torus.hops(0, 3) == 1  # wraps round
    with pytest.raises(TopologyError):
        SystemSpec(devices=6, topology="mesh2d", link_bandwidth=1e12, rows=4)


def test_presets_carry_their_interconnect():
    assert load_spec("a100-sxm").system.link_bandwidth == 300e9  # NVLink3: 600 GB/s both ways
    assert load_spec("h100-sxm").system.link_bandwidth == 450e9  # NVLink4: 900 GB/s both ways
    assert load_spec("dojo-tile").system.topology == "mesh2d"


SMALL = ModelConfig(layers=2, hidden=2048, heads=16, ffn=5632, seq_len=1024, batch=1)


def test_tensor_parallel_decode_is_the_compute_split_plus_the_all_reduces():
    t1 = simulate_system(ParallelLlm(SMALL, tp=1), A100, system=SWITCH)
    t2 = simulate_system(ParallelLlm(SMALL, tp=2), A100, system=SWITCH)
    c1 = sum(o.dur_ns for o in op_times(_layer_ops(SMALL, 1, 1, "decode", 1), A100, None)) * SMALL.layers
    c2 = sum(o.dur_ns for o in op_times(_layer_ops(SMALL, 1, 1, "decode", 2), A100, None)) * SMALL.layers
    act = 1 * SMALL.hidden * 2  # one token's fp16 activations
    ar = _ring_allreduce_ns(act, 2, hops=2)
    assert t1.total_ns == pytest.approx(c1, abs=SMALL.layers * 10 + 2)  # rounding per op
    assert t2.total_ns == pytest.approx(c2 + 2 * SMALL.layers * ar, abs=SMALL.layers * 12 + 2)
    assert t2.total_ns < t1.total_ns
    # faster by the compute the split saves, minus what the all-reduces cost
    assert t1.total_ns - t2.total_ns == pytest.approx((c1 - c2) - 2 * SMALL.layers * ar, abs=60)
    g1 = {o.name: o for o in op_times(_layer_ops(SMALL, 1, 1, "decode", 1), A100, None)}
    g2 = {o.name: o for o in op_times(_layer_ops(SMALL, 1, 1, "decode", 2), A100, None)}
    # the split by hand: FFN up+gate is 2 x M x N x K = 2 x 1 x (2 x 5632 / tp) x 2048 FLOPs per device
    assert g1["ffn_up_gate"].flops == 2 * 1 * (2 * 5632) * 2048
    assert g2["ffn_up_gate"].flops == 2 * 1 * (2 * 5632 // 2) * 2048
    assert g2["ffn_up_gate"].dur_ns < g1["ffn_up_gate"].dur_ns  # (fixed launch costs keep it above half)


@pytest.mark.parametrize(("stages", "micro"), [(4, 8), (2, 4)])
def test_pipeline_shows_the_bubble(stages, micro):
    cfg = ModelConfig(layers=4, hidden=2048, heads=16, ffn=5632, seq_len=1024, batch=micro)
    res = simulate_system(ParallelLlm(cfg, pp=stages, microbatches=micro), A100, system=SWITCH)
    expected = (stages - 1) / (micro + stages - 1)
    for dev in res.stats["per_device"]:
        idle = 1 - dev["compute_ns"] / res.total_ns
        # activations are 4 KB a hop: the transfers add well under 1% to a stage's time
        assert idle == pytest.approx(expected, abs=0.01)


def test_expert_parallel_imbalance_makes_the_others_wait():
    cfg = ModelConfig(layers=2, hidden=2048, heads=16, ffn=8192, seq_len=512, batch=512)
    even = simulate_system(MoeLlm(cfg, experts=8, top_k=2, ep=4, imbalance=1.0), A100, system=SWITCH)
    skew = simulate_system(MoeLlm(cfg, experts=8, top_k=2, ep=4, imbalance=2.5), A100, system=SWITCH)
    assert skew.total_ns > even.total_ns
    t = skew.trace.slices_df()
    routed = t[t["name"] == "layer0.expert_up_gate"]["args"].str.extract(r'"routed_tokens":(\d+)')[0].astype(int)
    assert routed.max() == round(512 * 2 * 2.5 / 4)  # the busiest device: 2.5 x the mean of 256
    comm = t[t["category"] == "all_to_all"]
    assert len(comm) == 2 * cfg.layers * 4 * 3  # dispatch + combine per layer, 4 devices x 3 steps


def test_trace_has_a_group_per_device_and_flows_across_devices():
    n = 4
    res = simulate_system(Collective("all_reduce", bytes=1 << 20, devices=n), A100, system=SWITCH)
    tr = res.trace
    groups = [r for r in tr.tracks.to_pylist() if r["kind"] == "group"]
    assert [g["name"] for g in groups] == [f"dev{i}" for i in range(n)]
    # every transfer after the first step forwards what the previous one delivered
    assert tr.flows.num_rows == n * (2 * (n - 1) - 1)
    slices = tr.slices_df()
    dev_of = dict(zip(slices["id"], slices["track_name"], strict=True))
    src_track = [dev_of[i] for i in tr.flows["from_slice"].to_pylist()]
    assert len(src_track) == tr.flows.num_rows
    devs = dict(zip(tr.tracks["id"].to_pylist(), tr.tracks["device"].to_pylist(), strict=True))
    f_dev = [devs[t] for t in slices.set_index("id").loc[tr.flows["from_slice"].to_pylist(), "track"]]
    t_dev = [devs[t] for t in slices.set_index("id").loc[tr.flows["to_slice"].to_pylist(), "track"]]
    assert all(a != b for a, b in zip(f_dev, t_dev, strict=True))  # each flow crosses devices


def test_analyzer_sees_the_communication_of_a_tensor_parallel_trace():
    from analysis import run_all
    from analysis.breakdown import headline

    res = simulate_system(ParallelLlm(SMALL, tp=2), A100, system=SWITCH)
    h = headline(run_all(res.trace))
    assert h["devices"] == 2 and h["comm_ns"] > 0
    # no "fuse small ops" finding about gaps between transfers on a link
    rep = run_all(res.trace)
    assert not [f for f in rep.findings if f.kind == "engine_gaps" and "link" in (f.track_name or "")]


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True, timeout=600)


def test_cli_allreduce_and_parallel_decode(tmp_path):
    out = tmp_path / "ar.pftrace"
    r = _cli("simulate", "allreduce", "--set", "bytes=1073741824", "--set", "devices=8", "--hw", "a100-sxm",
             "-o", str(out))
    assert r.returncode == 0, r.stderr
    ms = 2 * 7 / 8 * (1 << 30) / 300e9 * 1e3 + 2 * 7 * 2 * 1e-3  # the preset: 300 GB/s, 1 us a hop, NVSwitch
    assert f"{ms:.3f} ms" in r.stdout and "8 x a100-sxm" in r.stdout
    r = _cli("simulate", "llm-decode", "--set", "tp=2", "--set", "pp=2", "--hw", "a100-sxm", "-o",
             str(tmp_path / "d.pftrace"))
    assert r.returncode == 0, r.stderr
    assert "4 x a100-sxm" in r.stdout
    r = _cli("simulate", "allreduce", "--hw", "mi210", "-o", str(tmp_path / "m.pftrace"))
    assert r.returncode == 0 and "4 x mi210 (ring" in r.stdout  # the preset's own 4-card Infinity Fabric ring
    r = _cli("simulate", "allreduce", "--hw", "edge-npu", "-o", str(tmp_path / "x.pftrace"))
    assert r.returncode == 2 and "interconnect" in r.stderr and "Traceback" not in r.stderr
    r = _cli("simulate", "allreduce", "--hw", "edge-npu", "--set", "link_bandwidth=1e10", "--set", "devices=2",
             "-o", str(tmp_path / "y.pftrace"))
    assert r.returncode == 0, r.stderr
    assert np.isfinite(float(r.stdout.split(": ", 1)[1].split(" ms")[0]))
