"""The runtime SDK: nesting, threads, flows, counters, instants, sessions that fail or never stop.

Every behaviour is checked on both implementations of the hot path (the C extension and pure
Python) through the ``sdk`` fixture, which selects one and hands back the package.
"""

from __future__ import annotations

import ctypes
import gc
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import collectors.runtime as rt
from collectors.runtime import _native, _recorder, counter, flow_in, flow_out, instant, session, traced
from profiler.formats import read_trace

C_MISSING = f"C implementation not built: {_native.UNAVAILABLE}"
IMPLS = ["python", pytest.param("c", marks=pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING))]


@pytest.fixture(params=IMPLS)
def sdk(request):
    """The SDK package with ``Region``/``region`` of one implementation; restores the previous one."""
    prev = rt.implementation()
    rt.use(request.param)
    try:
        yield rt
    finally:
        rt.use(prev)


def _names_by_track(trace):
    df = trace.slices_df()
    return {name: g for name, g in df.groupby("track_name", observed=True)}


def test_nested_regions_keep_order_depth_and_attributes(sdk) -> None:
    with session() as s:
        with sdk.region("step"):
            with sdk.region("fwd", flops=2e9, bytes=4096, dtype="bf16", category="compute"):
                with sdk.region("matmul"):
                    pass
            with sdk.region("bwd"):
                pass
        with sdk.region("step"):
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


def test_prebuilt_region_recursion_and_traced_decorator(sdk) -> None:
    node = sdk.Region("node")

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
        sdk.region("x")(leaf)


def test_traced_methods_arguments_and_exceptions(sdk) -> None:
    class Model:
        def __init__(self) -> None:
            self.scale = 3

        @sdk.traced("Model.forward", flops=6.0)
        def forward(self, x: int, *, bias: int = 0) -> int:
            """Scale and shift."""
            return self.scale * x + bias

        @sdk.traced
        def fail(self) -> None:
            raise ValueError("boom")

    m = Model()
    fwd = Model.__dict__["forward"]
    assert fwd.__name__ == "forward" and fwd.__doc__ == "Scale and shift." and fwd.__wrapped__ is not None
    assert fwd.region.name == "Model.forward"
    assert m.forward(2, bias=1) == 7  # disabled: a plain call
    with session() as s:
        assert m.forward(2, bias=1) == 7 and Model.forward(m, 1) == 3
        with pytest.raises(ValueError, match="boom"):
            m.fail()
        assert m.forward(x=1) == 3
    df = s.trace.slices_df().sort_values("ts")
    assert df["name"].astype(str).tolist() == ["Model.forward", "Model.forward", fail_name(Model), "Model.forward"]
    assert (df["depth"] == 0).all() and df["flops"].iloc[0] == 6.0
    assert s.trace.metadata.import_stats.events_dropped == 0


def fail_name(cls: type) -> str:
    return f"{test_traced_methods_arguments_and_exceptions.__qualname__}.<locals>.{cls.__name__}.fail"


def test_eight_threads_lose_nothing(sdk) -> None:
    n = 100_000
    site = sdk.Region("work")
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


def test_sessions_start_and_stop_while_threads_record(sdk) -> None:
    """Threads keep recording across session boundaries: every session gets well-formed regions,
    regions cut by a boundary are repaired (closed at stop) or dropped (end without begin)."""
    stop = threading.Event()
    site = sdk.Region("busy")

    def worker() -> None:
        while not stop.is_set():
            with site:
                with sdk.region("inner"):
                    instant("tick")
            with sdk.region("attrs", flops=1.0):
                counter("n", 1.0)

    threads = [threading.Thread(target=worker, name=f"w{i}") for i in range(2)]
    for t in threads:
        t.start()
    traces = []
    try:
        for _ in range(6):
            with session() as s:
                time.sleep(0.001)
            traces.append(s.trace)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert sum(tr.num_events for tr in traces) > 0
    for tr in traces:
        df = tr.slices_df()
        assert set(df["name"].astype(str)) <= {"busy", "inner", "attrs"}
        assert (df["dur"] >= 0).all()
        st = tr.metadata.import_stats
        assert set(st.dropped) <= {"sdk_region_end_without_begin"}
        assert set(st.repaired) <= {"sdk_region_closed_at_stop"}


@pytest.mark.parametrize("suffix", [".trace", ".json", ".pftrace"])
def test_exception_still_writes_a_readable_trace(sdk, tmp_path, suffix) -> None:
    out = tmp_path / f"run{suffix}"
    with pytest.raises(ZeroDivisionError):
        with session(out):
            with sdk.region("ok"):
                pass
            with sdk.region("fails"):
                1 / 0  # noqa: B018
    back = read_trace(out)
    names = sorted(back.slices_df()["name"].astype(str).tolist())
    assert names == ["fails", "ok"]
    assert not _recorder.is_active()


def test_flows_link_the_right_regions_across_threads(sdk) -> None:
    handles: list[int] = []
    ready = threading.Event()

    def consumer() -> None:
        ready.wait()
        with sdk.region("consume", flow_from=handles[0]):
            pass
        with sdk.region("consume2"):
            flow_in(handles[1])

    with session() as s:
        t = threading.Thread(target=consumer, name="consumer")
        t.start()
        with sdk.region("produce"):
            with sdk.region("produce_inner"):
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


def test_counters_instants_and_engine_tracks(sdk) -> None:
    with session(device="npu0") as s:
        for i in range(5):
            counter("queue_depth", float(i))
        counter("mem_mb", 1.5)
        with sdk.region("dma", engine="dma0", bytes=1 << 20):
            instant("doorbell", args={"q": 3})
        with sdk.region("mm", engine="mxu", flops=1e6):
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


def test_disabled_records_nothing(sdk) -> None:
    pre = sdk.Region("pre")
    assert sdk.region("x") is sdk.region("y")  # the shared no-op object
    with sdk.region("x"), pre:
        counter("c", 1.0)
        instant("i")
        flow_in(flow_out())
    with session() as s:
        pass
    assert s.trace.num_events == 0
    with pre:  # after the session: nothing recorded either
        pass
    assert s.trace.num_events == 0


def test_session_started_inside_a_region_and_regions_left_open(sdk) -> None:
    outer = sdk.Region("outer")
    outer.__enter__()  # disabled: records nothing
    s = session().start()
    outer.__exit__(None, None, None)  # an end with no begin
    r = sdk.Region("left_open")
    r.__enter__()
    with sdk.region("closed"):
        pass
    tr = s.stop()
    r.__exit__(None, None, None)
    st = tr.metadata.import_stats
    assert st.dropped == {} and st.repaired == {"sdk_region_closed_at_stop": 1}
    df = tr.slices_df()
    assert sorted(df["name"].astype(str)) == ["closed", "left_open"]
    left = df[df["name"] == "left_open"].iloc[0]
    assert left["ts"] + left["dur"] == tr.metadata.extra["session_stop_ns"]


def test_orphan_end_in_stream_is_dropped_and_counted(sdk) -> None:
    s = session().start()
    with sdk.region("a"):
        pass
    _recorder._buffer().stream.append(time.perf_counter_ns())  # an end event whose begin was never recorded
    with sdk.region("b"):
        pass
    tr = s.stop()
    assert tr.metadata.import_stats.dropped == {"sdk_region_end_without_begin": 1}
    assert sorted(tr.slices_df()["name"].astype(str)) == ["a", "b"]


def test_one_session_at_a_time() -> None:
    with session():
        with pytest.raises(RuntimeError, match="already active"):
            session().start()


@pytest.mark.parametrize("impl", ["c", "python", "no-extension"])
def test_start_without_stop_writes_at_exit(tmp_path, impl) -> None:
    """Also: the environment variable picks the implementation, and without the extension the
    SDK falls back to Python."""
    if impl == "c" and "c" not in rt.available():
        pytest.skip(C_MISSING)
    out = tmp_path / "atexit.trace"
    block = "import sys; sys.modules['collectors.runtime._cregion'] = None\n" if impl == "no-extension" else ""
    code = (
        block
        + "import collectors.runtime as rt\n"
        "from collectors.runtime import start, region\n"
        "print(rt.implementation(), type(region('x')).__module__)\n"
        f"start({str(out)!r})\n"
        "for i in range(3):\n"
        "    with region('tick'):\n"
        "        pass\n"
    )
    env = {**os.environ, "ACCEL_PROFILER_SDK": "python" if impl == "python" else "c"}
    res = subprocess.run([sys.executable, "-W", "ignore", "-c", code], check=True, timeout=120, env=env,
                         capture_output=True, text=True)
    used, noop_module = res.stdout.split()
    assert used == ("c" if impl == "c" else "python")
    assert noop_module == ("collectors.runtime._cregion" if impl == "c" else "collectors.runtime._recorder")
    assert read_trace(out).slices_df()["name"].astype(str).tolist() == ["tick"] * 3


# ------------------------------------------------------------------ both implementations agree
def _program(sdk) -> None:
    """Everything the SDK records, in one deterministic program."""
    step = sdk.Region("step", category="loop")

    @sdk.traced("load", bytes=64.0)
    def load() -> int:
        with sdk.region("decode"):
            return 1

    handles: list[int] = []
    ready = threading.Event()

    def consumer() -> None:
        ready.wait()
        with sdk.region("consume", flow_from=handles[0], engine="dma1"):
            with sdk.region("unpack"):
                pass
        for i in range(50):
            with step:
                counter("consumed", float(i))

    t = threading.Thread(target=consumer, name="consumer")
    t.start()
    for i in range(3):
        with step:
            load()
            with sdk.region("mm", flops=2.0 * i, bytes=8.0, dtype="bf16", engine="mxu", args={"i": i}):
                instant("issue", args={"i": i})
                if i == 1:
                    handles.append(flow_out("to_consumer"))
            with sdk.region("reduce"):
                counter("depth", float(i))
        instant("end_step", engine="mxu")
    ready.set()
    t.join()


def _canonical(trace) -> dict:
    """A trace without its times: what each track holds, in time order, plus flows and counters."""
    df = trace.slices_df().sort_values(["track", "ts", "depth"], kind="stable")
    cols = ["track_name", "name", "depth", "category", "dtype", "args"]
    slices = [tuple(str(v) for v in row) for row in df[cols].itertuples(index=False)]
    slices += [(str(a), str(b)) for a, b in zip(df["flops"].tolist(), df["bytes"].tolist(), strict=True)]
    names = trace.slices["name"].to_pylist()
    flows = sorted((names[f], names[t], n) for f, t, n in zip(trace.flows["from_slice"].to_pylist(),
                                                            trace.flows["to_slice"].to_pylist(),
                                                            trace.flows["name"].to_pylist(), strict=True))
    tracks = trace.tracks_df().set_index("id")
    c = trace.counters_df().sort_values("ts", kind="stable")
    counters = {str(tracks.loc[k, "name"]): g["value"].tolist() for k, g in c.groupby("track")}
    inst = trace.instants_df().sort_values("ts", kind="stable")
    instants = [(str(tracks.loc[k, "name"]), str(n), str(a)) for k, n, a in
                zip(inst["track"], inst["name"], inst["args"], strict=True)]
    return {"slices": slices, "flows": flows, "counters": counters, "instants": instants,
            "stats": trace.metadata.import_stats.dropped}


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_c_and_python_record_the_same_trace() -> None:
    prev = rt.implementation()
    got = {}
    try:
        for impl in ("python", "c"):
            rt.use(impl)
            with session(device="npu0") as s:
                _program(rt)
            got[impl] = _canonical(s.trace)
    finally:
        rt.use(prev)
    assert got["c"] == got["python"]
    assert len(got["c"]["slices"]) == 2 * (3 * 5 + 2 + 50)
    assert got["c"]["flows"] == [("mm", "consume", "to_consumer")]


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_regions_made_before_a_switch_keep_recording() -> None:
    prev = rt.implementation()
    try:
        rt.use("python")
        py_made = rt.Region("made_in_python")
        rt.use("c")
        c_made = rt.Region("made_in_c")
        with session() as s:
            with py_made:
                pass
            with c_made:
                pass
        with pytest.raises(RuntimeError, match="while a session records"):
            with session():
                rt.use("python")
    finally:
        rt.use(prev)
    assert sorted(s.trace.slices_df()["name"].astype(str)) == ["made_in_c", "made_in_python"]


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_c_clock_is_perf_counter_ns() -> None:
    from collectors.runtime import _cregion

    for _ in range(100):
        a = time.perf_counter_ns()
        c = _cregion.now()
        b = time.perf_counter_ns()
        assert a <= c <= b
    # Timestamps of a C region lie inside the session bounds Python took.
    prev = rt.implementation()
    try:
        rt.use("c")
        with session() as s:
            with rt.region("r"):
                pass
    finally:
        rt.use(prev)
    row = s.trace.slices_df().iloc[0]
    extra = s.trace.metadata.extra
    assert extra["session_start_ns"] <= row["ts"] <= row["ts"] + row["dur"] <= extra["session_stop_ns"]


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_c_stream_is_read_without_copy_and_outlives_its_views() -> None:
    from collectors.runtime import _cregion

    s = _cregion.Stream(capacity=4)
    for v in range(4):
        s.append(v)
    m = memoryview(s)
    assert (m.format, m.itemsize, m.readonly, m.shape) == ("q", 8, True, (4,))
    view = np.frombuffer(s, dtype=np.int64)
    again = np.frombuffer(s, dtype=np.int64)
    assert np.shares_memory(view, again) and view.tolist() == [0, 1, 2, 3]
    for v in range(4, 10_000):  # grows while two views read the old block
        s.append(v)
    assert view.tolist() == [0, 1, 2, 3] and len(s) == 10_000 and s.capacity >= 10_000
    assert np.array_equal(np.frombuffer(s, dtype=np.int64), np.arange(10_000))
    late = np.frombuffer(s, dtype=np.int64)
    s.clear()  # views still alive: the events go, the memory they read stays
    s.append(-1)  # and a later event does not land in it
    assert len(s) == 1 and view.tolist() == [0, 1, 2, 3] and late[0] == 0 and late[-1] == 9_999
    del late
    del m, view, again
    with pytest.raises(TypeError, match="not writable"):
        (ctypes.c_char * 0).from_buffer(s)
    with pytest.raises(OverflowError):
        s.append(1 << 64)


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_c_disabled_objects_are_c_level() -> None:
    from collectors.runtime import _cregion

    prev = rt.implementation()
    try:
        rt.use("c")
        noop = rt.region("x")
        assert noop is _cregion.NOOP
        assert noop.__enter__() is noop and noop.__exit__(None, None, None) is None
        with pytest.raises(TypeError, match="traced"):
            rt.Region("y")(len)
        r = rt.Region("named", flops=1.0)
        assert r.name == "named" and r.site == _recorder.SITES.intern("named")
        assert repr(r) == f"Region('named', site={r.site})"
        # `with` binds nothing new per use: __enter__ is a hook the region made once, __exit__
        # one hook shared by all regions; the no-op's are not even bound.
        enter, exit_ = r.__enter__, r.__exit__
        assert enter is r.__enter__ and type(enter).__name__ == "Hook"
        assert exit_ is rt.Region("other").__exit__ is rt.Region.__exit__
        assert type(noop).__enter__ is noop.__enter__
        with pytest.raises(TypeError, match="no arguments"):
            enter(1)
        with session() as s:
            assert enter() is r and rt.Region.__enter__(r) is r
            assert exit_(None, None, None) is None and rt.Region.__exit__(r, None, None, None) is None
            del r, noop
            assert enter().name == "named"  # a bound __enter__ keeps its region alive
            exit_(None, None, None)
            with rt.Region("temporary", flops=2.0) as tmp:  # lives through the with block
                del tmp
            gc.collect()
        assert s.trace.slices_df()["name"].astype(str).tolist() == ["named", "named", "named", "temporary"]
    finally:
        rt.use(prev)


def test_c_extension_is_built_where_a_compiler_exists() -> None:
    """The install builds the extension when it can; a silent fallback would hide a broken build."""
    import shutil
    import sysconfig
    from pathlib import Path

    has_headers = (Path(sysconfig.get_paths()["include"]) / "Python.h").exists()
    if not (shutil.which("cc") or shutil.which("gcc")) or not has_headers:
        pytest.skip("no C compiler or Python headers here: the SDK runs in pure Python")
    assert "c" in rt.available(), f"{C_MISSING}; build it with: pip install -e ."
    assert rt.implementation() == "c" or os.environ.get("ACCEL_PROFILER_SDK", "") == "python"


def test_build_without_a_compiler_still_succeeds(tmp_path) -> None:
    """pyproject marks the extension optional: a failed compile leaves the pure-Python SDK."""
    import shutil
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for rel in ("pyproject.toml", "README.md", "collectors/runtime/_cregion.c"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / rel, tmp_path / rel)
    env = {**os.environ, "CC": str(tmp_path / "no-such-compiler"), "LDSHARED": str(tmp_path / "no-such-linker")}
    res = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "build_ext", "--inplace"],
                         cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "collectors.runtime._cregion" in res.stdout + res.stderr  # it was attempted
    assert not list((tmp_path / "collectors" / "runtime").glob("_cregion*.so"))


# ------------------------------------------------------- numbers per event, values checked first
def test_region_numbers_are_per_event_and_do_not_make_sites(sdk) -> None:
    """flops/bytes vary per call: each slice carries its own, and no site is interned per value."""
    from collectors.runtime._sites import SITES

    with session():  # warm: the site of ("matmul", bf16, mxu) exists from here on
        with sdk.region("matmul", flops=1.0, bytes=1.0, dtype="bf16", engine="mxu"):
            pass
    n_sites = len(SITES)
    tag = sdk.implementation()
    with session() as s:
        for i in range(1000):
            with sdk.region("matmul", flops=2.0 * i, bytes=i + 0.5, dtype="bf16", engine="mxu"):
                pass
        with sdk.region(f"only_bytes_{tag}", bytes=7):
            pass
        with sdk.region(f"zero_{tag}", flops=0, bytes=-0.0):
            pass
        pre = sdk.Region(f"pre_{tag}", flops=3, engine="mxu")
        with pre, pre:
            pass
    assert len(SITES) - n_sites == 3  # only_bytes, zero, pre: one site each, whatever the numbers
    df = s.trace.slices_df()
    mm = df[df["name"] == "matmul"].sort_values("ts")
    assert mm["flops"].tolist() == [2.0 * i for i in range(1000)]
    assert mm["bytes"].tolist() == [i + 0.5 for i in range(1000)]
    assert set(mm["dtype"].astype(str)) == {"bf16"} and set(mm["track_name"].astype(str)) == {"mxu"}
    ob = df[df["name"] == f"only_bytes_{tag}"].iloc[0]
    assert np.isnan(ob["flops"]) and ob["bytes"] == 7.0
    z = df[df["name"] == f"zero_{tag}"].iloc[0]
    assert z["flops"] == 0.0 and z["bytes"] == 0.0 and not np.signbit(z["bytes"])
    pre_rows = df[df["name"] == f"pre_{tag}"]
    assert pre_rows["flops"].tolist() == [3.0, 3.0] and sorted(pre_rows["depth"]) == [0, 1]
    assert s.trace.metadata.import_stats.events_read == 2 * 1004
    assert s.trace.metadata.import_stats.dropped == {}


BAD_CALLS = [
    (TypeError, "flops must be a number", lambda rt: rt.region("load", flops="n/a")),
    (TypeError, "bytes must be a number", lambda rt: rt.region("load", bytes=b"12")),
    (TypeError, "flops must be a number", lambda rt: rt.region("load", flops=True, engine="mxu")),
    (ValueError, "finite number >= 0", lambda rt: rt.region("load", flops=-1.0)),
    (ValueError, "finite number >= 0", lambda rt: rt.region("load", bytes=float("nan"), dtype="bf16")),
    (ValueError, "finite number >= 0", lambda rt: rt.region("load", flops=float("inf"))),
    (TypeError, "name must be a string", lambda rt: rt.region(5, flops=1.0)),
    (TypeError, "engine must be a string", lambda rt: rt.region("load", engine=3)),
    (TypeError, "dtype must be a string", lambda rt: rt.region("load", flops=1.0, dtype=["bf16"])),
    (TypeError, "args must be a dict", lambda rt: rt.region("load", args="x=1")),
    (TypeError, "flops must be a number", lambda rt: rt.Region("load", flops="n/a")),
    (TypeError, "category must be a string", lambda rt: rt.Region("load", category=1.5)),
    (TypeError, "flops must be a number", lambda rt: rt.traced(flops="n/a")(len)),
    (TypeError, "counter value must be a number", lambda rt: rt.counter("c", "3")),
    (TypeError, "name must be a string", lambda rt: rt.instant(None)),
    (TypeError, "flow_from|integer", lambda rt: rt.region("load", flow_from="h")),
    (TypeError, "session device must be a string", lambda rt: rt.session(device=0)),
    (ValueError, "memory_limit", lambda rt: rt.session(memory_limit=-1)),
]


@pytest.mark.parametrize("expected,message,call", BAD_CALLS, ids=[str(i) for i in range(len(BAD_CALLS))])
def test_bad_values_raise_in_the_caller_and_corrupt_nothing(sdk, tmp_path, expected, message, call) -> None:
    """A bad value raises where it was passed; this session and every later one still record."""
    out = tmp_path / "after.pftrace"
    with session() as s:
        with sdk.region("before", flops=1.0, engine="mxu"):
            pass
        with pytest.raises(expected, match=message):
            call(sdk)
        with sdk.region("between", flops=2.0, dtype="fp8"):
            pass
    assert sorted(s.trace.slices_df()["name"].astype(str)) == ["before", "between"]
    with session(out):
        with sdk.region("load", flops=3.0, bytes=4.0, engine="mxu"):
            counter("c", 1.0)
            instant("i")
    df = read_trace(out).slices_df()
    assert df["name"].astype(str).tolist() == ["load"] and df["flops"].tolist() == [3.0]


# ------------------------------------------------- signals, forks, memory, writes: real processes
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _child_env(impl: str) -> dict[str, str]:
    return {**os.environ, "ACCEL_PROFILER_SDK": impl, "PYTHONPATH": ROOT}


def _run_script(tmp_path, impl: str, code: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``code`` as a script in a fresh interpreter (killed, never left behind, on timeout)."""
    script = tmp_path / "child.py"
    script.write_text(code)
    return subprocess.run([sys.executable, "-W", "ignore", str(script), *args], env=_child_env(impl), cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


def _names(path) -> list[str]:
    return sorted(read_trace(path).slices_df()["name"].astype(str).tolist())


SIGNAL_CHILD = """
import os, signal, sys, time
from collectors.runtime import _recorder, start, stop, region
sig, mode = getattr(signal, sys.argv[2]), sys.argv[3]
if mode == "chain":
    def previous(signum, frame):
        print("previous handler", signum, flush=True)
        sys.exit(3)
    signal.signal(sig, previous)
elif mode == "ignored":
    signal.signal(sig, signal.SIG_IGN)
start(sys.argv[1])
with region("setup", flops=1.0, engine="mxu"):
    pass
if mode == "during_stop":  # the signal arrives while the session stops: it waits for the write
    deactivate = _recorder.deactivate
    def deactivate_then_signal():
        os.kill(os.getpid(), sig)
        deactivate()
    _recorder.deactivate = deactivate_then_signal
    with region("work"):
        pass
    stop()
    print("not reached", flush=True)
print("ready", flush=True)
t_end = time.monotonic() + 3
while mode != "ignored" or time.monotonic() < t_end:
    with region("work"):
        time.sleep(0.002)
"""


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
@pytest.mark.parametrize("mode", ["default", "chain", "ignored", "during_stop"])
def test_sigterm_and_sighup_write_the_trace_then_go_on(tmp_path, impl, signame, mode) -> None:
    """The trace is written, then the default action (death by the signal); a handler the program
    installed itself is left in place and runs (its exit writes the trace like any exit); an
    ignored signal stays ignored; a signal during a stop is handled once the trace is written."""
    import signal

    out = tmp_path / "killed.pftrace"
    script = tmp_path / "child.py"
    script.write_text(SIGNAL_CHILD)
    proc = subprocess.Popen([sys.executable, "-W", "ignore", str(script), str(out), signame, mode],
                            env=_child_env(impl), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        if mode != "during_stop":
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
            time.sleep(0.3)
            proc.send_signal(getattr(signal, signame))
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if mode == "chain":
        assert proc.returncode == 3 and "previous handler" in stdout, stderr
    elif mode == "ignored":
        assert proc.returncode == 0, stderr
    else:
        assert proc.returncode == -getattr(signal, signame), stderr
        assert "not reached" not in stdout
    names = _names(out)
    assert names[0] == "setup" and set(names[1:]) == {"work"} and len(names) > 1


SIGNAL_SAFE_CHILD = """
import signal, sys, time
from collectors.runtime import session, region, counter, instant
calls = []  # list.append: a handler may interrupt a handler, a += could lose a count
def handler(signum, frame):
    calls.append(1)
    with region("in_handler", flops=1.0, engine="irq"):
        instant("irq_point")
    with region(f"handler_site_{len(calls) % 40}"):
        counter("fired", 1.0)
signal.signal(signal.SIGALRM, handler)
n = 0
with session(sys.argv[1]) as s:
    signal.setitimer(signal.ITIMER_REAL, 0.0003, 0.0003)
    t_end = time.monotonic() + 1.5
    # (at most 60,000 calls: the site table holds 65,536 names, and later ones go to the overflow site)
    while time.monotonic() < t_end and n < 60_000:
        # a new site on every call: the main thread keeps interning while signals arrive
        with region(f"main_{n}", engine=f"e{n % 5}", flops=float(n)):
            instant("tick")
        counter("n", n)
        n += 1
    signal.setitimer(signal.ITIMER_REAL, 0, 0)
print(len(calls), n)
"""


@pytest.mark.parametrize("impl", IMPLS)
def test_regions_in_a_signal_handler_neither_deadlock_nor_corrupt(tmp_path, impl) -> None:
    """A handler records (new sites, points, counters) thousands of times while the main thread
    is interning sites and recording: nothing waits, nothing is lost, nothing is mismatched."""
    out = tmp_path / "signals.trace"
    res = _run_script(tmp_path, impl, SIGNAL_SAFE_CHILD, str(out), timeout=90)
    assert res.returncode == 0, res.stderr[-3000:]
    fired, n = map(int, res.stdout.split())
    assert fired > 100 and n > 100
    tr = read_trace(out)
    df = tr.slices_df()
    names = df["name"].astype(str)
    assert (names == "in_handler").sum() == fired
    assert names.str.startswith("handler_site_").sum() == fired
    main = df[names.str.startswith("main_")]
    assert len(main) == n
    assert (main["flops"] == main["name"].astype(str).str[5:].astype(float)).all()  # numbers stay with their region
    inst = tr.instants_df()
    assert (inst["name"] == "tick").sum() == n and (inst["name"] == "irq_point").sum() == fired
    tracks = tr.tracks_df().set_index("id")
    irq_points = inst[inst["name"] == "irq_point"]
    assert set(tracks.loc[irq_points["track"], "name"]) <= {"MainThread"}
    c = tr.counters_df()
    by_track = {tracks.loc[k, "name"]: sorted(g["value"].tolist()) for k, g in c.groupby("track")}
    assert by_track == {"n": [float(i) for i in range(n)], "fired": [1.0] * fired}
    assert tr.metadata.import_stats.dropped == {}


@pytest.mark.parametrize("impl", IMPLS)
def test_memory_limit_drops_and_counts_and_keeps_regions_whole(impl, tmp_path) -> None:
    limit = 1 << 20
    n = 150_000
    prev = rt.implementation()
    rt.use(impl)
    try:
        with pytest.warns(RuntimeWarning, match="memory limit"):
            with session(memory_limit=limit) as s:
                with rt.region("outer"):
                    for i in range(n):
                        with rt.region("r", flops=float(i)) if i % 2 else rt.region("b"):
                            with rt.region("inner"):
                                pass
                        counter("c", i)
                        instant("i")
    finally:
        rt.use(prev)
    tr = s.trace
    st = tr.metadata.import_stats
    df = tr.slices_df()
    kept_points = len(tr.instants_df()) + len(tr.counters_df())
    assert len(df) + kept_points + st.dropped["sdk_memory_limit"] == 1 + 2 * n + 2 * n
    assert len(df) < n  # most was refused
    # what was kept fits the budget (stream words; points and counters as estimated)
    assert st.events_read * 8 <= limit
    outer = df[df["name"] == "outer"].iloc[0]
    assert outer["depth"] == 0 and outer["ts"] + outer["dur"] < tr.metadata.extra["session_stop_ns"]
    assert st.repaired == {} and set(st.dropped) == {"sdk_memory_limit"}
    kept = df[df["name"] != "outer"]
    assert (kept[kept["name"] == "inner"]["depth"] == 2).all() and (kept[kept["name"] != "inner"]["depth"] == 1).all()
    r = kept[kept["name"] == "r"]
    assert len(r) and (r["flops"] % 2 == 1).all()


MEMORY_CHILD = """
import sys
import collectors.runtime as rt
from collectors.runtime import session, region

def rss_kb():
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))

s = session(memory_limit=int(sys.argv[1])).start()
step = rt.Region("step")
before = rss_kb()
for _ in range(2_000_000):
    with step:
        pass
grown = rss_kb() - before
tr = s.stop()
print(grown, len(tr.slices), tr.metadata.import_stats.dropped.get("sdk_memory_limit", 0))
"""


@pytest.mark.parametrize("impl", IMPLS)
def test_memory_limit_bounds_resident_memory(tmp_path, impl) -> None:
    """2M regions need 32 MB of events; with a 2 MB limit the process grows by a few MB."""
    if not os.path.exists("/proc/self/status"):
        pytest.skip("needs /proc (Linux)")
    res = _run_script(tmp_path, impl, MEMORY_CHILD, str(2 << 20), timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    grown_kb, kept, dropped = map(int, res.stdout.split())
    assert kept + dropped == 2_000_000 and kept <= (2 << 20) // 16
    assert grown_kb < 12 * 1024, f"grew by {grown_kb} kB"


FORK_CHILD = """
import os, sys
from collectors.runtime import start, stop, region
out = sys.argv[1]
start(out)
with region("before_fork"):
    pass
r, w = os.pipe()
pid = os.fork()
if pid == 0:
    os.close(w)
    os.read(r, 1)  # the parent has written its file
    with region("in_child", flops=1.0):
        pass
    sys.exit(0)  # normal exit: the child's session writes at exit
os.close(r)
with region("after_fork"):
    pass
stop()
os.write(w, b"x")
_, status = os.waitpid(pid, 0)
print(pid, os.waitstatus_to_exitcode(status))
"""


@pytest.mark.parametrize("impl", IMPLS)
def test_forked_child_writes_its_own_file_and_the_parent_keeps_its_regions(tmp_path, impl) -> None:
    from collectors.runtime.session import pid_path

    out = tmp_path / "run.pftrace"
    res = _run_script(tmp_path, impl, FORK_CHILD, str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    pid, code = map(int, res.stdout.split())
    assert code == 0
    assert _names(out) == ["after_fork", "before_fork"]
    child = pid_path(out, pid)
    assert child == tmp_path / f"run.{pid}.pftrace"
    ct = read_trace(child)
    assert ct.slices_df()["name"].astype(str).tolist() == ["in_child"]
    assert ct.metadata.extra["parent_pid"] != pid and ct.metadata.extra["pid"] == pid


MP_CHILD = """
import multiprocessing as mp, sys
from collectors.runtime import session, region

def work(i):
    with region("child_work", flops=float(i)):
        pass

if __name__ == "__main__":
    with session(sys.argv[1]):
        with region("parent"):
            ps = [mp.get_context("fork").Process(target=work, args=(i,)) for i in range(2)]
            for p in ps:
                p.start()
            for p in ps:
                p.join()
    print(" ".join(str(p.pid) for p in ps))
"""


@pytest.mark.parametrize("impl", IMPLS)
def test_multiprocessing_children_write_their_traces(tmp_path, impl) -> None:
    out = tmp_path / "mp.json"
    res = _run_script(tmp_path, impl, MP_CHILD, str(out))
    assert res.returncode == 0, res.stderr[-3000:]
    pids = [int(p) for p in res.stdout.split()]
    assert _names(out) == ["parent"]
    for i, pid in enumerate(pids):
        df = read_trace(tmp_path / f"mp.{pid}.json").slices_df()
        assert df["name"].astype(str).tolist() == ["child_work"] and df["flops"].tolist() == [float(i)]


ATOMIC_CHILD = """
import os, resource, signal, sys
from collectors.runtime import session, region
out = sys.argv[1]
with session(out):
    with region("small"):
        pass
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # over the limit, write() fails with EFBIG
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    with session(out):
        for i in range(20000):
            with region(f"big_{i % 500}", flops=float(i), args={"i": i % 7}):
                pass
except OSError as e:  # EFBIG, or a writer's own message about a short write
    print("failed", type(e).__name__)
"""


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("suffix", [".pftrace", ".json", ".json.gz", ".trace"])
def test_a_failed_write_keeps_the_previous_trace(tmp_path, impl, suffix) -> None:
    """A write that fails part way (file size limit: what a full disk does) leaves the old file."""
    out = tmp_path / f"run{suffix}"
    res = _run_script(tmp_path, impl, ATOMIC_CHILD, str(out), str(12 * 1024))
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split() == ["failed", "OSError"]
    assert _names(out) == ["small"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["child.py", out.name]  # no temporaries left


@pytest.mark.skipif("c" not in rt.available(), reason=C_MISSING)
def test_c_region_with_numbers_is_a_span_of_a_cached_site() -> None:
    """The C region() takes the whole call: the cached Region for labels only, a C Span (this
    call's numbers on that Region's site) with numbers; Python runs only on a site's first use."""
    from collectors.runtime import _cregion

    prev = rt.implementation()
    try:
        rt.use("c")
        with session() as s:
            first = rt.region("span_mm", flops=1.0, dtype="bf16", engine="mxu")  # first use: through Python
            base = rt.region("span_mm", dtype="bf16", engine="mxu")
            assert type(base) is _cregion.Region and base is rt.region("span_mm", dtype="bf16", engine="mxu")
            sp = rt.region("span_mm", flops=2.5, bytes=7, dtype="bf16", engine="mxu")
            assert type(sp) is _cregion.Span and type(first) is _cregion.Span
            np_sp = rt.region("span_mm", flops=np.int64(4), bytes=np.float32(0.5), dtype="bf16", engine="mxu")
            assert type(np_sp) is _cregion.Span and (np_sp.flops, np_sp.bytes) == (4.0, 0.5)
            assert (sp.site, sp.name, sp.flops, sp.bytes) == (base.site, "span_mm", 2.5, 7.0)
            assert sp.__enter__ is sp and type(sp).__exit__ is rt.Region.__exit__
            with sp:
                pass
            with first:
                pass
            with pytest.raises(TypeError, match="context manager"):
                sp(len)
            assert np.isnan(_cregion.Span(base, None, 3.0).flops)
            with pytest.raises(ValueError, match="finite"):
                _cregion.Span(base, -1.0)
    finally:
        rt.use(prev)
    df = s.trace.slices_df().sort_values("ts")
    assert df["flops"].tolist() == [2.5, 1.0] and np.isnan(df["bytes"].iloc[1]) and df["bytes"].iloc[0] == 7.0


def test_decoder_sets_numbers_aside_and_raises_times_that_go_back() -> None:
    """A stream as the pure-Python path leaves it when a signal handler records between a begin's
    clock read and its append: the handler's region comes first, with later times."""
    from collectors.runtime._flush import decode_stream
    from collectors.runtime._recorder import metric_words
    from collectors.runtime._sites import METRICS_FLAG, TIME_BITS
    from profiler.model import ImportStats

    t0 = 1_000_000

    def begin(site: int, t: int) -> int:
        return -((site + 1) << TIME_BITS) - t

    f, b = metric_words(2.5, None)
    stream = [begin(3, t0 + 150), t0 + 160,  # the handler's region
              begin(2 | METRICS_FLAG, t0 + 100), f, b,  # main's begin, read before the handler ran
              t0 + 200]
    stats = ImportStats()
    d = decode_stream(np.array(stream, dtype=np.int64), t0, t0 + 1000, 10, stats)
    assert d.site.tolist() == [3, 2] and d.events == 4
    assert d.ts.tolist() == [t0 + 150, t0 + 160] and d.dur.tolist() == [10, 40]
    assert np.isnan(d.flops[0]) and d.flops[1] == 2.5 and np.isnan(d.nbytes).all()
    assert stats.repaired == {"sdk_event_time_raised_to_previous": 1} and stats.dropped == {}
