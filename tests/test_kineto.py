"""Kineto / PyTorch profiler JSON: real torch.profiler CPU runs and real GPU traces (HTA test data)."""

from __future__ import annotations

import gzip
import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from profiler.formats import detect_format, read_trace, write_trace
from profiler.formats.kineto import estimate_input_bytes, read_kineto

DATA = Path(__file__).parent / "data" / "kineto"
GPU_CATS = ("kernel", "gpu_memcpy", "gpu_memset")


@pytest.fixture(scope="module")
def torch_trace(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Profile a small conv + MLP model on CPU; return (trace file, torch's own per-op flops)."""
    torch = pytest.importorskip("torch")
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(3, 8, 3), torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(8 * 14 * 14, 32),
        torch.nn.ReLU(), torch.nn.Linear(32, 10),
    )
    x = torch.randn(4, 3, 16, 16)
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True, with_flops=True) as prof:
        loss = model(x).sum()
        loss.backward()
    path = tmp_path_factory.mktemp("torch") / "run.pt.trace.json"
    prof.export_chrome_trace(str(path))
    flops: dict[str, list[int]] = {}
    for e in prof.events():
        if e.flops:
            flops.setdefault(e.name, []).append(int(e.flops))
    return path, flops


def test_torch_cpu_trace_ops_flops_nesting(torch_trace) -> None:  # type: ignore[no-untyped-def]
    path, torch_flops = torch_trace
    assert detect_format(path) == "kineto"
    t = read_trace(path)
    assert t.metadata.source_format == "kineto"
    df = t.slices_df()
    names = set(df["name"])
    assert {"aten::addmm", "aten::conv2d"} <= names
    # flops equal what torch's profiler itself reports, op by op
    for op in ("aten::addmm", "aten::conv2d"):
        ours = sorted(df.loc[(df["name"] == op) & df["flops"].notna(), "flops"].astype(int).tolist())
        assert ours == sorted(torch_flops[op]) and ours
    # child ops nest under their callers on host tracks
    addmm = df[df["name"] == "aten::addmm"]
    assert (addmm["depth"] > 0).all() and (addmm["track_kind"] == "host").all()
    # shapes kept in args, bytes estimated from them: addmm(bias[32], x[4,1568], w.T[1568,32]) in fp32
    row = addmm[addmm["args"].str.contains("1568")].iloc[0]
    args = json.loads(row["args"])
    assert args["Input Dims"][:3] == [[32], [4, 1568], [1568, 32]]
    assert row["bytes"] == (32 + 4 * 1568 + 1568 * 32) * 4 and row["dtype"] == "fp32"
    raw = json.loads(path.read_text())
    n_cpu_op = sum(1 for e in raw["traceEvents"] if e.get("cat") == "cpu_op" and e.get("ph") == "X")
    assert (df["category"] == "cpu_op").sum() == n_cpu_op
    n_flow = sum(1 for e in raw["traceEvents"] if e.get("ph") in ("s", "f"))
    if n_flow:  # torch links forward and backward ops with fwdbwd flows
        assert t.flows.num_rows > 0


def test_estimate_input_bytes() -> None:
    assert estimate_input_bytes([[2, 3], [], [4]], ["c10::BFloat16", "Scalar", "long int"]) == (2 * 3 * 2 + 4 * 8, "bf16")
    assert estimate_input_bytes([[2, 3]], [""]) == (None, None)
    assert estimate_input_bytes([[[1, 2], [3]]], ["TensorList"]) == (None, None)


def _straight_counts(path: Path) -> Counter[str]:
    raw = json.loads(gzip.decompress(path.read_bytes()))
    return Counter(e.get("cat") for e in raw["traceEvents"] if e.get("ph") == "X")


@pytest.mark.parametrize("name", ["a100_alexnet", "v100_ns_resolution", "amd_mi250_minitoy_train"])
def test_gpu_traces_tracks_flows_and_counts(name: str) -> None:
    path = DATA / f"{name}.json.gz"
    t = read_kineto(path)
    df = t.slices_df()
    got = Counter(df["category"].astype(str))
    want = _straight_counts(path)
    assert {k: got.get(k, 0) for k in want} == dict(want)
    # kernels on per-stream compute tracks under a GPU group; memcpy/memset on dma tracks
    tracks = t.tracks_df().set_index("id")
    for cat, kind in (("kernel", "compute"), ("gpu_memcpy", "dma"), ("gpu_memset", "dma")):
        sub = df[df["category"] == cat]
        if len(sub):
            assert (sub["track_kind"] == kind).all(), cat
            assert all(tracks.loc[tracks.loc[i, "parent"], "name"].startswith("GPU ") for i in sub["track"].unique())
    kernel_tracks = tracks.loc[df[df["category"] == "kernel"]["track"].unique(), "name"]
    assert all(re.fullmatch(r"stream \d+", n) for n in kernel_tracks)
    # launch -> GPU work flows
    cats = df["category"].astype(str).to_numpy()
    f = t.flows_df()
    launch_to_gpu = np.isin(cats[f["from_slice"]], ["cuda_runtime", "cuda_driver"]) & np.isin(cats[f["to_slice"]], GPU_CATS)
    assert launch_to_gpu.sum() > 0
    assert "deviceProperties" in t.metadata.extra
    t.validate()


def test_v100_ns_timestamps_are_exact() -> None:
    path = DATA / "v100_ns_resolution.json.gz"
    text = gzip.decompress(path.read_bytes()).decode()
    # the first X event's ts text, converted by hand: 19 significant digits (beyond float64)
    m = re.search(r'"ph": ?"X".*?"ts": ?([0-9]+)\.([0-9]{3}), ?"dur": ?([0-9]+)\.([0-9]{3})', text)
    assert m
    ts_ns = int(m.group(1)) * 1000 + int(m.group(2))
    dur_ns = int(m.group(3)) * 1000 + int(m.group(4))
    assert float(f"{m.group(1)}.{m.group(2)}") * 1000 != ts_ns
    t = read_kineto(path)
    rows = t.slices_df(False)
    assert ((rows["ts"] == ts_ns) & (rows["dur"] == dur_ns)).any()
    all_ts = set(rows["ts"].tolist())
    texts = re.findall(r'"ph": ?"X"[^{}]*?"ts": ?([0-9]+)\.([0-9]{3})', text)
    assert all(int(a) * 1000 + int(b) in all_ts for a, b in texts[:2000])


def test_correlation_links_when_flow_events_are_absent() -> None:
    path = DATA / "compare_base.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))
    assert not any(e.get("ph") in ("s", "f") for e in raw["traceEvents"])
    corr_launch = {e["args"]["correlation"] for e in raw["traceEvents"] if e.get("cat") == "cuda_runtime"}
    corr_gpu = [e["args"]["correlation"] for e in raw["traceEvents"] if e.get("cat") in GPU_CATS]
    t = read_kineto(path)
    assert t.flows.num_rows == sum(1 for c in corr_gpu if c in corr_launch) > 0


def test_base_time_and_round_trip(tmp_path: Path) -> None:
    path = DATA / "amd_mi250_minitoy_train.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))
    base = raw["baseTimeNanoseconds"]
    t = read_kineto(path)
    first = min(e["ts"] for e in raw["traceEvents"] if e.get("ph") == "X")
    assert t.time_span()[0] == base + round(first * 1000)
    assert t.metadata.clock == "unix_epoch"
    write_trace(t, tmp_path / "rt.json")
    back = read_trace(tmp_path / "rt.json")
    cols = ["track", "ts", "dur", "name", "depth", "flops", "bytes", "dtype"]
    assert t.slices_df(False)[cols].astype(str).equals(back.slices_df(False)[cols].astype(str))
    assert t.flows_df().equals(back.flows_df())
    assert t.tracks_df()[["name", "kind", "sort_index"]].equals(back.tracks_df()[["name", "kind", "sort_index"]])


@pytest.mark.parametrize("flow_cat", ["ac2g", "async_cpu_to_gpu", None])
def test_launch_flows_not_doubled_by_correlation_ids(tmp_path: Path, flow_cat: str | None) -> None:
    """Older Kineto names launch flows "async_cpu_to_gpu": they, like "ac2g", make correlation links redundant."""
    evs: list[dict[str, object]] = [
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 10, "dur": 5,
         "args": {"correlation": 5}},
        {"ph": "X", "cat": "kernel", "name": "k", "pid": 0, "tid": 7, "ts": 20, "dur": 3, "args": {"correlation": 5}},
    ]
    if flow_cat:
        evs += [{"ph": "s", "cat": flow_cat, "name": "f", "id": 5, "pid": 1, "tid": 1, "ts": 10},
                {"ph": "f", "cat": flow_cat, "name": "f", "id": 5, "pid": 0, "tid": 7, "ts": 20, "bp": "e"}]
    p = tmp_path / "k.json"
    p.write_text(json.dumps({"schemaVersion": 1, "traceEvents": evs}))
    t = read_kineto(p)
    names = t.slices_df()["name"].astype(str).tolist()
    assert [(names[r.from_slice], names[r.to_slice]) for r in t.flows_df().itertuples()] == [("cudaLaunchKernel", "k")]
    assert t.metadata.extra.get("flows_from_correlation_ids", 0) == (0 if flow_cat else 1)


def _flow_points(path: Path) -> list[dict[str, object]]:
    raw = json.loads(gzip.decompress(path.read_bytes()))
    return [e for e in raw["traceEvents"] if e.get("ph") in ("s", "t", "f")]


@pytest.mark.parametrize("name", ["mtia_inference_rank0", "a100_alexnet", "v100_ns_resolution",
                                  "amd_mi250_minitoy_train", "a100_event_sync_multi_stream"])
def test_no_flow_with_a_start_is_dropped(name: str) -> None:
    """Every flow end whose (id, cat, name) has a start becomes a flow, fan-outs included.

    Counted straight from the file: the MTIA trace has launches whose one ``ac2g`` start fans out
    to 4, 5 or 9 device ops; Perfetto keeps all of them (an "f" does not close a v1 flow).
    """
    path = DATA / f"{name}.json.gz"
    pts = _flow_points(path)
    starts = {(e.get("cat"), e.get("name"), e["id"]) for e in pts if e["ph"] == "s"}
    ends_with_start = sum(1 for e in pts if e["ph"] == "f" and (e.get("cat"), e.get("name"), e["id"]) in starts)
    t = read_kineto(path)
    dropped = t.metadata.import_stats.dropped
    assert t.flows.num_rows == ends_with_start - dropped.get("flow_endpoint_not_on_a_slice", 0)
    assert dropped.get("flow_endpoint_not_on_a_slice", 0) == 0
    ends_without = sum(1 for e in pts if e["ph"] == "f" and (e.get("cat"), e.get("name"), e["id"]) not in starts)
    assert dropped.get("flow_end_without_start", 0) == ends_without


def test_mtia_fan_out_flows_counted_by_kind() -> None:
    path = DATA / "mtia_inference_rank0.json.gz"
    pts = _flow_points(path)
    per_id = Counter(e["id"] for e in pts if e["ph"] == "f")
    fan_out = sum(n for n in per_id.values() if n > 1)
    t = read_kineto(path)
    assert "flow_end_without_start" not in t.metadata.import_stats.dropped
    kinds = t.metadata.extra["flow_kinds"]
    assert kinds["one_to_many"] == fan_out == 657
    assert kinds["one_to_one"] + kinds["one_to_many"] == t.flows.num_rows == 1166
    # each fanned-out flow leaves the same launch slice
    f = t.flows_df()
    assert f.groupby("from_slice").size().max() == 9


def test_graph_launch_fans_out_and_reused_ids_pair_in_time(tmp_path: Path) -> None:
    """A cudaGraphLaunch's one ac2g start reaches every kernel of the graph; an id used again later
    (s f s f) links each end to its own start, not to the first one."""
    evs: list[dict[str, object]] = [
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaGraphLaunch", "pid": 1, "tid": 1, "ts": 10, "dur": 5},
        {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 1, "tid": 1, "ts": 10},
        *[{"ph": "X", "cat": "kernel", "name": f"k{i}", "pid": 0, "tid": 7, "ts": 20 + 10 * i, "dur": 3}
          for i in range(3)],
        *[{"ph": "f", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 0, "tid": 7, "ts": 20 + 10 * i, "bp": "e"}
          for i in range(3)],
        {"ph": "X", "cat": "cuda_runtime", "name": "cudaLaunchKernel", "pid": 1, "tid": 1, "ts": 100, "dur": 5},
        {"ph": "s", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 1, "tid": 1, "ts": 100},
        {"ph": "X", "cat": "kernel", "name": "late", "pid": 0, "tid": 7, "ts": 120, "dur": 3},
        {"ph": "f", "cat": "ac2g", "name": "ac2g", "id": 9, "pid": 0, "tid": 7, "ts": 120, "bp": "e"},
    ]
    p = tmp_path / "g.json"
    p.write_text(json.dumps({"schemaVersion": 1, "traceEvents": evs}))
    t = read_kineto(p)
    names = t.slices_df()["name"].astype(str).tolist()
    got = sorted((names[r.from_slice], names[r.to_slice]) for r in t.flows_df().itertuples())
    assert got == [("cudaGraphLaunch", "k0"), ("cudaGraphLaunch", "k1"), ("cudaGraphLaunch", "k2"),
                   ("cudaLaunchKernel", "late")]
    assert t.metadata.extra["flow_kinds"] == {"one_to_one": 1, "one_to_many": 3, "many_to_one": 0}
    assert not t.metadata.import_stats.dropped


def test_mtia_device_work_found_by_what_the_trace_says() -> None:
    """MTIA device ops land on device tracks by role; runtime spans stay host (counted from the file)."""
    path = DATA / "mtia_inference_rank0.json.gz"
    raw = json.loads(gzip.decompress(path.read_bytes()))["traceEvents"]
    ccp = Counter(e["name"] for e in raw if e.get("ph") == "X" and e.get("cat") == "mtia_ccp_events")
    n_runtime = sum(1 for e in raw if e.get("ph") == "X" and e.get("cat") == "mtia_runtime")
    t = read_kineto(path)
    df = t.slices_df()
    tracks = t.tracks_df().set_index("id")
    dev = df[df["category"] == "mtia_ccp_events"]
    kind_of = dev.groupby(dev["name"].astype(str))["track_kind"].agg(lambda s: set(s))
    assert kind_of["dma_request"] == {"dma"}
    assert kind_of["pe_exe"] == kind_of["merge"] == kind_of["remote"] == {"compute"}
    assert kind_of["event_wait"] == kind_of["event_record"] == {"other"}  # markers and waits are not work
    assert len(dev) == sum(ccp.values())
    assert all(tracks.loc[tracks.loc[i, "parent"], "name"] == "MTIA 17" for i in dev["track"].unique())
    rt = df[df["category"] == "mtia_runtime"]
    assert len(rt) == n_runtime and set(rt["track_kind"]) == {"host"}
    assert "unknown_device_categories" not in t.metadata.extra


@pytest.mark.parametrize("process", ["XPU 0", "MTIA 3", "HPU 1", "GPU 2"])
def test_unknown_device_category_is_device_work_of_unknown_kind(tmp_path: Path, process: str) -> None:
    evs: list[dict[str, object]] = [
        {"ph": "M", "name": "process_name", "pid": 5, "tid": 0, "args": {"name": process}},
        {"ph": "X", "cat": "xpu_runtime", "name": "launch", "pid": 1, "tid": 1, "ts": 10, "dur": 5},
        {"ph": "X", "cat": "vendor_exec", "name": "op", "pid": 5, "tid": 3, "ts": 20, "dur": 3},
        {"ph": "X", "cat": "vendor_exec", "name": "op", "pid": 5, "tid": 3, "ts": 30, "dur": 3},
        {"ph": "X", "cat": "vendor_tool", "name": "thing", "pid": 1, "tid": 1, "ts": 40, "dur": 3},
    ]
    p = tmp_path / "u.json"
    p.write_text(json.dumps({"schemaVersion": 1, "traceEvents": evs}))
    t = read_kineto(p)
    df = t.slices_df()
    ops = df[df["name"] == "op"]
    assert set(ops["track_kind"]) == {"compute"}
    tr = t.tracks_df().set_index("id").loc[int(ops["track"].iloc[0])]
    assert json.loads(tr["attrs"])["device_kind"] == "unknown"
    assert t.metadata.extra["unknown_device_categories"] == {"vendor_exec": 2}  # host-side unknowns stay host
    assert set(df.loc[df["name"].isin(["launch", "thing"]), "track_kind"]) == {"host"}
    from analysis import run_all

    assert "device work of unknown kind, counted as compute: vendor_exec (2)" in run_all(t).summary["notes"]


def test_tpu_style_device_process_is_not_host(tmp_path: Path) -> None:
    """Generic Chrome JSON from a TPU profiler: threads of "/device:TPU:0" are device work."""
    from analysis.context import AnalysisContext

    evs: list[dict[str, object]] = [
        {"ph": "M", "name": "process_name", "pid": 1, "tid": 0, "args": {"name": "/device:TPU:0"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "XLA Ops"}},
        {"ph": "M", "name": "process_name", "pid": 9, "tid": 0, "args": {"name": "/host:CPU"}},
        {"ph": "M", "name": "thread_name", "pid": 9, "tid": 4, "args": {"name": "tf_Compute"}},
        {"ph": "X", "name": "fusion.1", "pid": 1, "tid": 2, "ts": 10, "dur": 5},
        {"ph": "X", "name": "convolution.2", "pid": 1, "tid": 2, "ts": 20, "dur": 5},
        {"ph": "X", "name": "ExecuteOp", "pid": 9, "tid": 4, "ts": 5, "dur": 30},
    ]
    p = tmp_path / "tpu.json"
    p.write_text(json.dumps({"traceEvents": evs}))
    t = read_trace(p)
    ctx = AnalysisContext(t)
    names = dict(zip(t.tracks_df()["id"], t.tracks_df()["name"], strict=True))
    roles = {names[i]: ctx.roles[i] for i in names}
    assert roles["XLA Ops"] == "compute" and roles["tf_Compute"] == "host"
    assert not ctx.host_as_compute


def test_streamed_read_keeps_fan_outs_and_device_tracks() -> None:
    path = DATA / "mtia_inference_rank0.json.gz"
    a, b = read_trace(path, stream=True), read_trace(path, stream=False)
    assert a.flows.num_rows == b.flows.num_rows == 1166
    assert a.flows_df().equals(b.flows_df())
    cols = ["name", "kind", "attrs"]
    assert a.tracks_df()[cols].equals(b.tracks_df()[cols])
    assert a.metadata.extra["flow_kinds"] == b.metadata.extra["flow_kinds"]


def test_report_import_lines_count_flows_by_kind() -> None:
    from analysis import run_all
    from analysis.render import render

    text = render(run_all(read_kineto(DATA / "mtia_inference_rank0.json.gz"), analyzers=("overlap",)), "text")
    assert "flows: 509 one-to-one, 657 one-to-many, 0 many-to-one" in text
