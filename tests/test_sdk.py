"""The runtime SDK: nesting, threads, flows, counters, instants, sessions that fail or never stop."""

from __future__ import annotations

import subprocess
import sys
import threading

import numpy as np
import pytest

from collectors.runtime import Region, _recorder, counter, flow_in, flow_out, instant, region, session, traced
from profiler.formats import read_trace


def _names_by_track(trace):
    df = trace.slices_df()
    return {name: g for name, g in df.groupby("track_name", observed=True)}


def test_nested_regions_keep_order_depth_and_attributes() -> None:
    with session() as s:
        with region("step"):
            with region("fwd", flops=2e9, bytes=4096, dtype="bf16", category="compute"):
                with region("matmul"):
                    pass
            with region("bwd"):
                pass
        with region("step"):
            pass
    df = s.trace.slices_df().sort_values("ts")
    assert df["name"].tolist() == ["step", "fwd", "matmul", "bwd", "step"]
    assert df["depth"].tolist() == [0, 1, 2, 1, 0]
    fwd = df[df["name"] == "fwd"].iloc[0]
    assert fwd["flops"] == 2e9 and fwd["bytes"] == 4096 and fwd["dtype"] == "bf16" and fwd["category"] == "compute"
    assert np.isnan(df[df["name"] == "bwd"]["flops"].iloc[0])
    step = df.iloc[0]
    for _, child in df.iloc[1:4].iterrows():  # children lie inside their parent
        assert step["ts"] <= child["ts"] and child["ts"] + child["dur"] <= step["ts"] + step["dur"]
    assert s.trace.metadata.import_stats.events_dropped == 0


def test_prebuilt_region_recursion_and_traced_decorator() -> None:
    node = Region("node")

    def tree(d: int) -> None:
        with node:
            if d:
                tree(d - 1)
                tree(d - 1)

    @traced
    def leaf() -> int:
        return 7

    @traced("named", flops=10.0)
    def other() -> int:
        return leaf()

    assert other() == 7  # outside a session the wrapper just calls
    with session() as s:
        tree(3)
        assert other() == 7
    df = s.trace.slices_df()
    nodes = df[df["name"] == "node"]
    assert len(nodes) == 15 and sorted(nodes["depth"].value_counts().items()) == [(0, 1), (1, 2), (2, 4), (3, 8)]
    named = df[df["name"] == "named"].iloc[0]
    inner = df[df["name"].str.endswith("leaf")].iloc[0]
    assert named["flops"] == 10.0 and inner["depth"] == named["depth"] + 1
    with pytest.raises(TypeError, match="traced"):
        region("x")(leaf)


def test_eight_threads_lose_nothing() -> None:
    n = 100_000
    site = Region("work")
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(n):
            with site:
                pass

    with session() as s:
        threads = [threading.Thread(target=worker, name=f"worker-{i}") for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    df = s.trace.slices_df(with_track_names=True)
    counts = df.groupby("track_name", observed=True).size().to_dict()
    assert counts == {f"worker-{i}": n for i in range(8)}
    assert (df["depth"] == 0).all() and (df["dur"] >= 0).all()
    stats = s.trace.metadata.import_stats
    assert stats.events_dropped == 0 and stats.events_repaired == 0
    assert stats.events_read == 8 * n * 2


@pytest.mark.parametrize("suffix", [".trace", ".json", ".pftrace"])
def test_exception_still_writes_a_readable_trace(tmp_path, suffix) -> None:
    out = tmp_path / f"run{suffix}"
    with pytest.raises(ZeroDivisionError):
        with session(out):
            with region("ok"):
                pass
            with region("fails"):
                1 / 0  # noqa: B018
    back = read_trace(out)
    names = sorted(back.slices_df()["name"].astype(str).tolist())
    assert names == ["fails", "ok"]
    assert not _recorder.is_active()


def test_flows_link_the_right_regions_across_threads() -> None:
    handles: list[int] = []
    ready = threading.Event()

    def consumer() -> None:
        ready.wait()
        with region("consume", flow_from=handles[0]):
            pass
        with region("consume2"):
            flow_in(handles[1])

    with session() as s:
        t = threading.Thread(target=consumer, name="consumer")
        t.start()
        with region("produce"):
            with region("produce_inner"):
                handles.append(flow_out("h0"))
            handles.append(flow_out("h1"))
        ready.set()
        t.join()
    tr = s.trace
    names = tr.slices["name"].to_pylist()
    pairs = sorted((names[f], names[t_], n) for f, t_, n in zip(tr.flows["from_slice"].to_pylist(),
                                                             tr.flows["to_slice"].to_pylist(),
                                                             tr.flows["name"].to_pylist(), strict=True))
    assert pairs == [("produce", "consume2", "h1"), ("produce_inner", "consume", "h0")]


def test_counters_instants_and_engine_tracks() -> None:
    with session(device="npu0") as s:
        for i in range(5):
            counter("queue_depth", float(i))
        counter("mem_mb", 1.5)
        with region("dma", engine="dma0", bytes=1 << 20):
            instant("doorbell", args={"q": 3})
        with region("mm", engine="mxu", flops=1e6):
            pass
        instant("on_engine", engine="mxu")
    tr = s.trace
    tracks = tr.tracks_df().set_index("id")
    c = tr.counters_df()
    by_track = {tracks.loc[k, "name"]: g["value"].tolist() for k, g in c.groupby("track")}
    assert by_track == {"queue_depth": [0.0, 1.0, 2.0, 3.0, 4.0], "mem_mb": [1.5]}
    assert set(tracks.loc[c["track"].unique(), "kind"]) == {"counter"}
    inst = tr.instants_df()
    assert sorted(inst["name"].astype(str)) == ["doorbell", "on_engine"]
    assert tracks.loc[inst[inst["name"] == "on_engine"]["track"].item(), "name"] == "mxu"
    assert "3" in inst[inst["name"] == "doorbell"]["args"].item()
    df = tr.slices_df()
    kinds = dict(zip(df["name"].astype(str), df["track_kind"], strict=True))
    assert kinds == {"dma": "dma", "mm": "compute"}
    assert set(df["device"]) == {"npu0"}


def test_disabled_records_nothing() -> None:
    pre = Region("pre")
    assert region("x") is region("y")  # the shared no-op object
    with region("x"), pre:
        counter("c", 1.0)
        instant("i")
        flow_in(flow_out())
    with session() as s:
        pass
    assert s.trace.num_events == 0
    with pre:  # after the session: nothing recorded either
        pass
    assert s.trace.num_events == 0


def test_session_started_inside_a_region_and_regions_left_open() -> None:
    outer = Region("outer")
    outer.__enter__()  # disabled: records nothing
    s = session().start()
    outer.__exit__(None, None, None)  # an end with no begin
    r = Region("left_open")
    r.__enter__()
    with region("closed"):
        pass
    tr = s.stop()
    r.__exit__(None, None, None)
    st = tr.metadata.import_stats
    assert st.dropped == {} and st.repaired == {"sdk_region_closed_at_stop": 1}
    df = tr.slices_df()
    assert sorted(df["name"].astype(str)) == ["closed", "left_open"]
    left = df[df["name"] == "left_open"].iloc[0]
    assert left["ts"] + left["dur"] == tr.metadata.extra["session_stop_ns"]


def test_orphan_end_in_stream_is_dropped_and_counted() -> None:
    s = session().start()
    with region("a"):
        pass
    _recorder._get_ap()(_recorder._now())  # an end event whose begin was never recorded
    with region("b"):
        pass
    tr = s.stop()
    assert tr.metadata.import_stats.dropped == {"sdk_region_end_without_begin": 1}
    assert sorted(tr.slices_df()["name"].astype(str)) == ["a", "b"]


def test_one_session_at_a_time() -> None:
    with session():
        with pytest.raises(RuntimeError, match="already active"):
            session().start()


def test_start_without_stop_writes_at_exit(tmp_path) -> None:
    out = tmp_path / "atexit.trace"
    code = (
        "from collectors.runtime import start, region\n"
        f"start({str(out)!r})\n"
        "for i in range(3):\n"
        "    with region('tick'):\n"
        "        pass\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    assert read_trace(out).slices_df()["name"].astype(str).tolist() == ["tick"] * 3
