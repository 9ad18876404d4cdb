"""The dashboard's callbacks called as plain functions (no browser, no HTTP), on hand-checked traces."""

from __future__ import annotations

import numpy as np
import pytest

from profiler.builder import TraceBuilder
from ui import api
from ui import callbacks as cb
from ui import rangestats as rs
from ui.demo import demo_trace
from ui.server import build_registry
from ui.state import LoadedTrace


def hand_trace() -> LoadedTrace:
    """core0/matrix: k1 [0,100), wait [100,400) (stall), k2 [400,500); core0/dma0: load [50,350) 3,000 B."""
    b = TraceBuilder(source_format="test")
    core = b.add_track("core0", kind="group")
    mx = b.add_track("matrix", kind="compute", parent=core)
    dma = b.add_track("dma0", kind="dma", parent=core)
    b.add_slices(mx, np.array([0, 100, 400]), np.array([100, 300, 100]), ["k1", "wait_dma", "k2"],
                 category=["kernel", "stall", "kernel"])
    ld = b.add_slices(dma, np.array([50]), np.array([300]), "load", category="dma", bytes=[3000.0])
    b.add_flows(ld, np.array([1]), name="dma_done")
    return LoadedTrace(0, "hand", b.build())


def test_range_statistics_by_hand() -> None:
    lt = hand_trace()
    t0, t1 = 50, 450  # 400 ns
    ids = rs.in_window(lt, t0, t1)
    assert sorted(ids.tolist()) == [0, 1, 2, 3]
    names = {r["name"]: r for r in rs.by_name(lt, ids, t0, t1)}
    assert names["wait_dma"]["total_ns"] == 300 and names["k1"]["total_ns"] == 50 and names["k2"]["total_ns"] == 50
    assert names["load"]["count"] == 1 and names["load"]["max"] == "300 ns"
    tracks = {r["track"]: r for r in rs.by_track(lt, ids, t0, t1)}
    m = tracks["core0 / matrix"]
    assert (m["busy_pct"], m["stall_pct"]) == (25.0, 75.0)  # 100 ns working, 300 ns waiting of 400
    assert m["bytes"] == "–"  # no slice on it moves bytes
    d = tracks["core0 / dma0"]
    assert d["busy_pct"] == 75.0 and d["bytes"] == "3 kB"  # all of the load is inside
    # Half of the load inside a narrower window: half of its bytes.
    ids = rs.in_window(lt, 200, 350)
    assert {r["track"]: r["bytes"] for r in rs.by_track(lt, ids, 200, 350)}["core0 / dma0"] == "1.5 kB"
    assert [r["name"] for r in rs.longest(lt, rs.in_window(lt, 0, 500))][:2] == ["wait_dma", "load"]


def test_search_steps_forward_and_back_and_wraps() -> None:
    lt = LoadedTrace(0, "demo", demo_trace(5_000))
    names = lt.columns["names"]
    codes = [k for k, n in enumerate(names) if n and "softmax" in n.lower()]  # softmax and aten::softmax
    assert len(codes) == 2
    ids = np.flatnonzero(np.isin(lt.columns["name"], codes))
    ids = ids[np.argsort(lt.index.ts[ids], kind="stable")]
    first = api.search_answer(lt, {"q": "SOFTMAX", "from": "-1", "dir": "1"})  # case-insensitive
    assert first["count"] == ids.size and first["id"] == ids[0] and first["index"] == 0
    nxt = api.search_answer(lt, {"q": "softmax", "from": str(first["ts"]), "dir": "1"})
    assert nxt["id"] == ids[1]
    back = api.search_answer(lt, {"q": "softmax", "from": str(first["ts"]), "dir": "-1"})
    assert back["id"] == ids[-1]  # before the first: wraps to the last
    exact = int((lt.columns["name"] == names.index("softmax")).sum())
    assert api.search_answer(lt, {"q": "^soft.*x$", "re": "1"})["count"] == exact < ids.size
    assert api.search_answer(lt, {"q": "nothing-like-this"})["count"] == 0
    with pytest.raises(api.BadRequest):
        api.search_answer(lt, {"q": "(", "re": "1"})


def test_flows_and_details_without_a_browser() -> None:
    lt = hand_trace()
    reg = build_registry([(lt.trace, None)], None)
    nav = cb.on_flow(reg, {"type": "flow", "index": 3}, [1], 0)
    assert nav["sel"] == 3 and nav["ts"] == 50 and nav["dur"] == 300 and nav["t0"] < 50 and nav["t1"] > 350
    assert cb.on_flow(reg, {"type": "flow", "index": 99}, [1], 0) is cb.no_update
    text = str(cb.details(reg.traces[0], 1))
    assert "'flops'" in text and "–" in text and "0.00" not in text
    assert "load on core0 / dma0" in text  # the stall waited on the load (a flow, clickable)
    sel = cb.on_select(reg, {"key": 0, "t0": 0, "t1": 500, "sel": 1})
    assert "wait_dma" in str(sel)


def test_a_finding_jumps_to_the_longest_stall_on_its_worst_engine() -> None:
    reg = build_registry([(demo_trace(20_000), None)], None)
    lt = reg.traces[0]
    from ui.layout import report_of

    rep = report_of(lt, None)
    i, f = next((i, f) for i, f in enumerate(rep.findings) if f.kind == "stall")
    hl, nav = cb.on_finding(reg, {"type": "finding", "index": i}, [1], 0)
    worst = cb.finding_track(lt, f)
    assert " / ".join(lt.trace.track_path(worst)) == (f.details["engines"][0] if isinstance(f.details["engines"], list)
                                                        else eval(f.details["engines"])[0])  # noqa: S307 - test data
    ix = lt.index
    a, b = ix.ranges[worst]
    stalls = [k for k in range(a, b) if lt.columns["cats"][lt.columns["cat"][k]] == "stall"]
    assert nav["sel"] in stalls and ix.dur[nav["sel"]] == max(ix.dur[k] for k in stalls)
    assert hl["track"] == worst and nav["track"] == worst


def test_the_view_api_answers_only_the_rows_asked() -> None:
    lt = LoadedTrace(0, "demo", demo_trace(5_000, cores=4))
    full = api.view_answer(lt, {"w": "800"})
    part = api.view_answer(lt, {"w": "800", "r0": "3", "r1": "6"})
    assert set(part["bars"]["r"]) <= {3, 4, 5}
    assert {b["r"] for b in part["bins"]} <= {3, 4, 5}
    assert len(part["bars"]["id"]) < len(full["bars"]["id"])
    bad = api.view_answer(lt, {"q": "(", "re": "1"})
    assert bad["error"].startswith("bad regular expression") and bad["marks"]["id"] == []


def test_a_stall_links_to_the_slice_it_waits_for() -> None:
    """The simulator's stalls carry ``waits_for`` (a slice id) and no flow: the details link to it."""
    from collectors.simulator.api import simulate
    from collectors.simulator.workloads import Gemm
    from profiler.hardware import load_spec
    from profiler.model import parse_args

    t = simulate(Gemm(M=256, N=256, K=256), load_spec("edge-npu")).trace
    lt = LoadedTrace(0, "sim", t)
    stall = next(i for i in range(lt.index.n) if lt.columns["cats"][lt.columns["cat"][i]] == "stall"
                 and isinstance(parse_args(t.slices["args"][i].as_py()).get("waits_for"), int))
    args = parse_args(t.slices["args"][stall].as_py())
    target = args["waits_for"]
    assert lt.columns["names"][lt.columns["name"][target]] == args["waits_for_name"]  # the simulator's own label
    flows_in = cb.details(lt, stall).children[1]
    links = [li.children for li in flows_in.children[1].children]
    assert [b.id["index"] for b in links] == [target]
    assert args["waits_for_name"] in links[0].children


def test_slice_hover_metrics_by_hand() -> None:
    """The hover's flops/bytes/AI of test_ui_roofline's kernels, worked out there; "–" where missing."""
    from test_ui_roofline import roof_trace

    lt = LoadedTrace(0, "roof", roof_trace())
    sid = {n: k for k, n in enumerate(lt.columns["names"][c] for c in lt.columns["name"])}
    gemm = api.slice_answer(lt, {"id": str(sid["fast_gemm"])})
    assert (gemm["flops"], gemm["bytes"], gemm["ai"], gemm["achieved"]) == ("25.8 MFLOP", "25.8 kB", "1000 FLOP/B",
                                                                          "25.8 TFLOP/s")
    load = api.slice_answer(lt, {"id": str(sid["load"])})
    assert (load["flops"], load["bytes"], load["ai"]) == ("–", "500 kB", "–")
    stall = api.slice_answer(lt, {"id": str(sid["wait_dma"])})
    assert (stall["flops"], stall["bytes"], stall["ai"], stall["dtype"]) == ("–", "–", "–", "–")
    for bad in ({"id": "99"}, {"id": "-1"}, {"id": "x"}, {}):
        with pytest.raises(api.BadRequest):
            api.slice_answer(lt, bad)
