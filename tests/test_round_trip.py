"""Cross-format round trips keep every event: JSON -> model -> Perfetto -> model -> JSON -> model.

Compared on what users see: per slice its track path, ts, dur, name, category, depth, flops, bytes
and dtype; counters per track path; instants; flows by their endpoints' identities.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from profiler import Trace, read_trace, write_trace
from sample_traces import HERE as SAMPLES

DATA = Path(__file__).resolve().parent / "data"


def _paths(trace: Trace) -> dict[int, str]:
    return {int(t): " / ".join(trace.track_path(int(t))) for t in trace.tracks["id"].to_numpy()}


def _canonical(trace: Trace) -> dict[str, pd.DataFrame]:
    paths = _paths(trace)
    s = trace.slices.to_pandas()
    s["track"] = s["track"].map(paths)
    for c in ("name", "category", "dtype"):
        s[c] = s[c].astype(object)
    slices = s[["track", "ts", "dur", "name", "category", "depth", "flops", "bytes", "dtype"]]
    key = slices.apply(lambda r: (r["track"], r["ts"], r["dur"], r["name"]), axis=1)
    c = trace.counters.to_pandas()
    c["track"] = c["track"].map(paths)
    i = trace.instants.to_pandas()
    i["track"] = i["track"].map(paths)
    i["name"] = i["name"].astype(object)
    f = trace.flows.to_pandas()
    f = pd.DataFrame({"from": key.iloc[f["from_slice"]].to_numpy() if len(f) else [],
                      "to": key.iloc[f["to_slice"]].to_numpy() if len(f) else []})
    order = lambda df, cols: df.sort_values(cols).reset_index(drop=True)  # noqa: E731
    return {
        "slices": order(slices, ["track", "ts", "dur", "name"]),
        "counters": order(c[["track", "ts", "value"]], ["track", "ts"]),
        "instants": order(i[["track", "ts", "name"]], ["track", "ts", "name"]),
        "flows": f.assign(k=f.astype(str).sum(axis=1)).sort_values("k").drop(columns="k").reset_index(drop=True),
    }


def _assert_same(a: Trace, b: Trace) -> None:
    ca, cb = _canonical(a), _canonical(b)
    for name in ca:
        pd.testing.assert_frame_equal(ca[name], cb[name], check_dtype=False, obj=name)
    assert [n for n in a.tracks["name"].to_pylist()] == [n for n in b.tracks["name"].to_pylist()] or \
        sorted(_paths(a).values()) == sorted(_paths(b).values())


HAND_WRITTEN = {
    "traceEvents": [
        {"ph": "M", "name": "process_name", "pid": 1, "args": {"name": "npu"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 2, "args": {"name": "mxu"}},
        {"ph": "M", "name": "thread_name", "pid": 1, "tid": 3, "args": {"name": "dma0"}},
        {"ph": "X", "name": "layer", "cat": "op", "pid": 1, "tid": 2, "ts": 10.0, "dur": 100.5},
        {"ph": "X", "name": "matmul", "cat": "kernel", "pid": 1, "tid": 2, "ts": 20.25, "dur": 50.125,
         "args": {"flops": 1.5e9, "bytes": 3.0e6, "dtype": "bf16"}},
        {"ph": "B", "name": "load", "cat": "dma", "pid": 1, "tid": 3, "ts": 5.0, "args": {"bytes": 65536}},
        {"ph": "E", "pid": 1, "tid": 3, "ts": 19.999},
        {"ph": "s", "id": 7, "name": "dep", "cat": "flow", "pid": 1, "tid": 3, "ts": 6.0},
        {"ph": "f", "id": 7, "name": "dep", "cat": "flow", "pid": 1, "tid": 2, "ts": 21.0, "bp": "e"},
        {"ph": "C", "name": "sram", "pid": 1, "ts": 5.0, "args": {"bytes": 65536}},
        {"ph": "C", "name": "sram", "pid": 1, "ts": 20.0, "args": {"bytes": 0}},
        {"ph": "i", "name": "sync", "pid": 1, "tid": 2, "ts": 111.0, "s": "t"},
    ]
}


def _chain(src: Path, tmp: Path) -> list[Trace]:
    first = read_trace(src)
    write_trace(first, tmp / "a.pftrace")
    second = read_trace(tmp / "a.pftrace")
    write_trace(second, tmp / "b.json")
    third = read_trace(tmp / "b.json")
    return [first, second, third]


def test_hand_written_chrome_json_survives_perfetto_and_back(tmp_path: Path) -> None:
    src = tmp_path / "in.json"
    src.write_text(json.dumps(HAND_WRITTEN))
    first, second, third = _chain(src, tmp_path)
    assert first.slices.num_rows == 3 and first.counters.num_rows == 2 and first.flows.num_rows == 1
    assert first.instants.num_rows == 1
    mm = first.slices_df().set_index("name").loc["matmul"]
    assert (mm["ts"], mm["dur"], mm["depth"], mm["flops"], mm["dtype"]) == (20_250, 50_125, 1, 1.5e9, "bf16")
    assert first.slices_df().set_index("name").loc["load", "dur"] == 14_999
    _assert_same(first, second)
    _assert_same(first, third)


@pytest.mark.parametrize("name", ["a100_alexnet.json.gz", "v100_ns_resolution.json.gz", "amd_mi250_minitoy_train.json.gz"])
def test_real_gpu_kineto_traces_survive(tmp_path: Path, name: str) -> None:
    first, second, third = _chain(DATA / "kineto" / name, tmp_path)
    assert first.slices.num_rows > 0
    _assert_same(first, second)
    _assert_same(first, third)


def test_real_torch_cpu_trace_survives(tmp_path: Path) -> None:
    first, second, third = _chain(SAMPLES / "torch_cpu_mlp.pt.trace.json.gz", tmp_path)
    assert (first.slices["depth"].to_numpy() > 0).any()
    assert np.nansum(first.slices["flops"].to_numpy(zero_copy_only=False)) > 0
    _assert_same(first, second)
    _assert_same(first, third)


def test_simulator_trace_survives_json_and_parquet(tmp_path: Path) -> None:
    first, second, third = _chain(SAMPLES / "gemm_single_buffered.pftrace", tmp_path)
    _assert_same(first, second)
    _assert_same(first, third)
    third.save(tmp_path / "c.trace")
    _assert_same(first, Trace.load(tmp_path / "c.trace"))
