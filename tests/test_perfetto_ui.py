"""Our exports opened in the real Perfetto UI: counts match, no import errors, our track order."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from perfetto_ui import PerfettoUI, missing
from test_perfetto import _accelerator_trace

from profiler import Trace
from profiler.formats.perfetto_writer import write_perfetto

pytestmark = [pytest.mark.browser, pytest.mark.skipif(missing() is not None, reason=str(missing()))]


@pytest.fixture(scope="module")
def ui() -> Any:
    with PerfettoUI() as driver:
        yield driver


def _find(nodes: list[dict[str, Any]], name: str) -> dict[str, Any] | None:
    for n in nodes:
        if n["name"] == name:
            return n
        hit = _find(n["children"], name)
        if hit is not None:
            return hit
    return None


def _check_counts(ui: PerfettoUI, t: Trace) -> None:
    # Instants are zero-duration slices in Perfetto's slice table.
    assert ui.scalar("select count(*) as n from slice") == t.slices.num_rows + t.instants.num_rows
    assert ui.scalar("select count(*) as n from slice where dur > 0") == int((t.slices_df()["dur"] > 0).sum())
    assert ui.scalar("select count(*) as n from counter") == t.counters.num_rows
    assert ui.scalar("select count(*) as n from flow") == t.flows.num_rows
    assert ui.import_errors() == []


def test_perfetto_export_in_the_ui(ui: PerfettoUI, tmp_path: Path) -> None:
    t = _accelerator_trace()
    path = tmp_path / "accel.pftrace"
    write_perfetto(t, path)
    ui.load(path)
    _check_counts(ui, t)
    # Every track of ours holding events exists in the trace processor, counter tracks as such.
    names = {r["name"] for r in ui.query("select distinct name from track where name is not null")}
    used = set(t.slices["track"].to_pylist()) | set(t.counters["track"].to_pylist())
    assert {t.tracks["name"][i].as_py() for i in used} <= names
    counters = {r["name"] for r in ui.query("select name from counter_track")}
    assert counters == {"hbm", "z_mxu (counter)"}
    # Perfetto nests every slice exactly as we do (ties and zero-duration slices included).
    ours = sorted(zip(t.slices["name"].to_pylist(), t.slices["ts"].to_pylist(), t.slices["depth"].to_pylist(), strict=True))
    instants = set(t.instants["name"].to_pylist())
    rows = ui.query("select name, ts, depth from slice")
    theirs = sorted((r["name"], r["ts"], r["depth"]) for r in rows if r["name"] not in instants)
    assert theirs == ours
    flops = ui.scalar(
        "select display_value from args join slice using (arg_set_id) "
        "where slice.name = 'matmul' and args.key = 'debug.flops'"
    )
    assert float(flops) == 2.5e9
    # The UI shows our sibling order (z_mxu before a_vpu), not sorted names.
    tree = ui.track_tree()
    assert [n["name"] for n in tree if n["name"].startswith("npu")] == ["npu0", "npu1"]
    core = _find(tree, "core0")
    assert core is not None, tree
    assert [c["name"] for c in core["children"]] == ["z_mxu", "a_vpu", "dma0"]
    dev = _find(tree, "npu0")
    assert dev is not None and [c["name"] for c in dev["children"]] == ["core0", "hbm"]


def test_larger_generated_trace_in_the_ui(ui: PerfettoUI, tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from bench.bench_perfetto import make_trace

    t = make_trace(20_000, seed=3)
    path = tmp_path / "gen.pftrace"
    write_perfetto(t, path)
    ui.load(path)
    _check_counts(ui, t)
    assert ui.scalar("select max(depth) as d from slice") == int(t.slices_df()["depth"].max())


def test_real_gpu_trace_in_the_ui(ui: PerfettoUI, tmp_path: Path) -> None:
    src = Path("/work/shared/data/kineto/a100_alexnet.json.gz")
    if not src.exists():
        pytest.skip(f"{src} not present")
    from profiler.formats import read_trace

    t = read_trace(src)
    path = tmp_path / "alexnet.pftrace"
    write_perfetto(t, path)
    ui.load(path)
    _check_counts(ui, t)


def _load_chrome_json(ui: PerfettoUI, tmp_path: Path) -> Trace:
    writer = pytest.importorskip("profiler.formats.chrome_json_writer")
    t = _accelerator_trace()
    path = tmp_path / "accel.json"
    writer.write_chrome_json(t, path)
    ui.load(path)
    return t


def test_chrome_json_export_in_the_ui(ui: PerfettoUI, tmp_path: Path) -> None:
    t = _load_chrome_json(ui, tmp_path)
    # Overlapping complete events on one JSON thread would be dropped and counted here.
    assert ui.import_errors() == []
    assert ui.scalar("select count(*) as n from slice where dur > 0") == int((t.slices_df()["dur"] > 0).sum())
    assert ui.scalar("select count(*) as n from counter") == t.counters.num_rows
    assert ui.scalar("select count(*) as n from flow") >= t.flows.num_rows - 1


def _flow_ends(t: Trace) -> list[tuple[tuple[str, int, int], tuple[str, int, int]]]:
    s = t.slices_df()
    end = [(str(s.name[i]), int(s.track[i]), int(s.ts[i])) for i in range(len(s))]
    return sorted((end[r.from_slice], end[r.to_slice]) for r in t.flows_df().itertuples())


def test_chrome_json_export_keeps_backward_flows(ui: PerfettoUI, tmp_path: Path) -> None:
    t = _load_chrome_json(ui, tmp_path)
    assert ui.scalar("select count(*) as n from flow") == t.flows.num_rows
    # The trace has a flow written backwards for Perfetto; our reader turns it the right way again.
    from profiler.formats import read_trace

    assert json.loads((tmp_path / "accel.json").read_bytes())["otherData"]["accel_profiler"]["reversed_flows"]
    assert _flow_ends(read_trace(tmp_path / "accel.json")) == _flow_ends(t)
