"""The dashboard's roofline on a hand-made edge-npu trace whose numbers are worked out by hand.

edge-npu (profiler/specs/edge-npu.toml): fp16 peak 18.4 TFLOP/s, DRAM 68 GB/s, so the fp16 roof
at arithmetic intensity AI is min(18.4e12, AI x 68e9) FLOP/s.  Each kernel below runs 1 µs:

* ``fast_gemm``: 25.76 MFLOP over 25.76 kB (AI 1000, past the ridge at 270.6): it achieves
  25.76 TFLOP/s against a compute roof of 18.4 TFLOP/s, 1.4 times above the roof;
* ``hot_copy``: 1.36 MFLOP over 136 kB (AI 10): 1.36 TFLOP/s against a memory roof of
  10 x 68 GB/s = 0.68 TFLOP/s, 2 times above;
* ``honest``: 3.4 MFLOP over 34 kB (AI 100): 3.4 TFLOP/s under its roof of 6.8 TFLOP/s.

A DMA load (bytes, no flops) and a stall (neither) are there for the timeline's hover.
"""

from __future__ import annotations

import numpy as np
import pytest

from profiler.builder import TraceBuilder
from profiler.hardware import load_spec
from profiler.model import Trace
from ui import callbacks as cb
from ui import roofline as rl
from ui.server import build_registry


def roof_trace() -> Trace:
    b = TraceBuilder(source_format="test", hardware="edge-npu")
    core = b.add_track("core0", kind="group")
    mx = b.add_track("matrix", kind="compute", parent=core)
    dma = b.add_track("dma0", kind="dma", parent=core)
    b.add_slices(mx, np.array([0, 2_000, 4_000, 5_000]), np.array([1_000, 1_000, 1_000, 1_000]),
                 ["fast_gemm", "hot_copy", "honest", "wait_dma"], category=["kernel", "kernel", "kernel", "stall"],
                 flops=[2.576e7, 1.36e6, 3.4e6, np.nan], bytes=[2.576e4, 1.36e5, 3.4e4, np.nan],
                 dtype=["fp16", "fp16", "fp16", None])
    b.add_slices(dma, np.array([500]), np.array([4_000]), "load", category="dma", bytes=[5e5])
    return b.build()


def test_table_says_how_far_above_its_roof_each_op_ran() -> None:
    reg = build_registry([(roof_trace(), None)], None)
    df = rl.table(reg.traces[0], None).set_index("name")
    assert df.loc["fast_gemm", "roof_tflops"] == pytest.approx(18.4)
    assert df.loc["fast_gemm", "above"] == pytest.approx(1.4)
    assert df.loc["hot_copy", "roof_tflops"] == pytest.approx(0.68)
    assert df.loc["hot_copy", "above"] == pytest.approx(2.0)
    assert np.isnan(df.loc["honest", "above"]) and df.loc["honest", "headroom"] == pytest.approx(2.0)


def test_points_above_the_roof_are_marked_and_listed() -> None:
    reg = build_registry([(roof_trace(), None)], None)
    lt = reg.traces[0]
    spec = load_spec("edge-npu")
    fig = rl.figure(rl.table(lt, None), spec)
    above = [t for t in fig["data"] if "above the roof" in t.get("name", "")]
    assert len(above) == 1
    mark = above[0]
    assert mark["name"] == "above the roof: spec below measured"
    assert sorted(cd[0] for cd in mark["customdata"]) == ["fast_gemm", "hot_copy"]
    others = [t for t in fig["data"] if str(t.get("name", "")).endswith("-bound ops")]
    assert [cd[0] for t in others for cd in t["customdata"]] == ["honest"]  # not drawn twice
    assert mark["marker"]["symbol"] not in {t["marker"].get("symbol", "circle") for t in others}
    hover = {cd[0]: cd[-1] for cd in mark["customdata"]}
    assert "×1.4 above its compute roof (fp16 peak 18.4 TFLOP/s)" in hover["fast_gemm"]
    assert "×2 above its memory roof (dram 68 GB/s × AI)" in hover["hot_copy"]
    # The page says so under the chart, worst first.
    view = {"key": lt.key, "t0": 0, "t1": 10_000}
    _, rows, note = cb.render_roofline(reg, view, None)
    assert "2 of 3 ops ran above their roof" in note
    assert note.index("hot_copy ×2") < note.index("fast_gemm ×1.4")
    assert all("above" not in r for r in rows)  # the op table keeps its columns
    # A window holding only the honest kernel: nothing to say.
    _, _, note = cb.render_roofline(reg, {"key": lt.key, "t0": 4_100, "t1": 4_900}, None)
    assert note == ""
