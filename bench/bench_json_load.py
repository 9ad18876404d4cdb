"""Loading a 1,000,000-event Kineto JSON file: our reader against orjson.loads of the same bytes.

orjson.loads is the floor any Python JSON importer stands on (it only makes dicts; we also build
columns, nest slices, bind flows and dictionary-encode names), so the ratio ours/orjson says how
much the model costs on top of parsing.  Our reader pauses the cyclic GC while it parses
(:func:`profiler.formats.json_events.gc_paused`), so the baseline runs under the same setting:
``ratio_vs_orjson`` is ours over orjson.loads with the GC paused (the requirement: <= 1.5).  The
row with the GC on is shown for reference only; no ratio is taken against it, because comparing a
GC-paused reader with a GC-on baseline flatters the reader about threefold.  Besides wall-clock
medians the table gives CPU-time medians (``cpu_s``, user + system of this process): on a shared
machine the wall clock also counts time spent waiting for a core, the CPU time does not.

Two files: timestamps relative to ``baseTimeNanoseconds`` as torch 2.x writes them (the float
path), and the same events with Unix-epoch microsecond timestamps as older Kineto versions write
them (beyond float64: the exact text path).  Also timed: Parquet save/load of the resulting trace,
peak memory of each step in a child process, and HolisticTraceAnalysis's loader when ``hta`` imports
(the row says why when it does not).
"""

from __future__ import annotations

import gc
import json
import random
import statistics
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

from bench._util import median_time, peak_memory, report

CACHE = Path(tempfile.gettempdir()) / "accel-profiler-bench"

_KERNELS = [
    "void at::native::vectorized_elementwise_kernel<4, at::native::CUDAFunctor_add<float>, "
    "at::detail::Array<char*, 3> >(int, at::native::CUDAFunctor_add<float>, at::detail::Array<char*, 3>)",
    "ampere_sgemm_128x64_tn",
    "void cutlass::Kernel<cutlass_80_tensorop_s1688gemm_128x128_32x3_nn_align4>(cutlass_80_tensorop_"
    "s1688gemm_128x128_32x3_nn_align4::Params)",
    "void at::native::reduce_kernel<512, 1, at::native::ReduceOp<float, at::native::func_wrapper_t<float, "
    "at::native::sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, "
    "unsigned int, float, 4> >(at::native::ReduceOp<float, at::native::func_wrapper_t<float, at::native::"
    "sum_functor<float, float, float>::operator()(at::TensorIterator&)::{lambda(float, float)#1}>, unsigned int, float, 4>)",
]
_OPS = [("aten::linear", "aten::addmm"), ("aten::conv2d", "aten::cudnn_convolution"), ("aten::add", "aten::add_"),
        ("aten::relu", "aten::clamp_min"), ("aten::sum", "aten::sum")]


def make_kineto_file(path: Path, n_events: int, seed: int = 0, epoch: bool = False) -> Path:
    """Write a Kineto-style trace of about ``n_events`` events (~250 bytes each, like real ones).

    Each step is 6 events: an outer cpu_op, a child cpu_op with shapes and flops, the
    cudaLaunchKernel runtime call, an ac2g flow start, the kernel on a stream, the flow end.
    Timestamps are microseconds with 3 decimals relative to baseTimeNanoseconds, as torch 2.x
    writes; with ``epoch`` they are Unix-epoch microseconds (16 integer digits) and there is no
    baseTimeNanoseconds, as older Kineto versions write.
    """
    rng = random.Random(seed)
    pid, tid = 4242, 4242
    lines: list[str] = []
    t = 1_735_632_360_000_000.0 if epoch else 4_203_669_603_000.0
    gpu_t = t + 50.0
    corr = 1000
    for i in range(n_events // 6):
        outer, inner = _OPS[i % len(_OPS)]
        b, m, k = rng.choice((8, 16, 32)), rng.choice((256, 512, 1024)), rng.choice((256, 1024))
        d_outer = 40.0 + rng.random() * 20
        lines.append(
            f'{{"ph":"X","cat":"cpu_op","name":"{outer}","pid":{pid},"tid":{tid},"ts":{t:.3f},"dur":{d_outer:.3f},'
            f'"args":{{"External id":{corr},"Record function id":0,"Ev Idx":{i}}}}}'
        )
        t_in = t + 3.125
        lines.append(
            f'{{"ph":"X","cat":"cpu_op","name":"{inner}","pid":{pid},"tid":{tid},"ts":{t_in:.3f},"dur":{d_outer - 8:.3f},'
            f'"args":{{"External id":{corr + 1},"Record function id":0,"Ev Idx":{i},'
            f'"Input Dims":[[{b},{m}],[{m},{k}],[]],"Input type":["float","float",""],'
            f'"Input Strides":[[{m},1],[{k},1],[]],"flops":{2 * b * m * k}}}}}'
        )
        t_rt = t_in + 10.5
        lines.append(
            f'{{"ph":"X","cat":"cuda_runtime","name":"cudaLaunchKernel","pid":{pid},"tid":{tid},"ts":{t_rt:.3f},'
            f'"dur":7.251,"args":{{"External id":{corr + 1},"cbid":211,"correlation":{corr}}}}}'
        )
        lines.append(f'{{"ph":"s","id":{corr},"pid":{pid},"tid":{tid},"ts":{t_rt:.3f},"cat":"ac2g","name":"ac2g"}}')
        gpu_t = max(gpu_t, t_rt + 5.0)
        kd = 2.0 + rng.random() * 30
        stream = 7 if i % 4 else 20
        lines.append(
            f'{{"ph":"X","cat":"kernel","name":"{_KERNELS[i % len(_KERNELS)]}","pid":0,"tid":{stream},"ts":{gpu_t:.3f},'
            f'"dur":{kd:.3f},"args":{{"External id":{corr + 1},"queued":0,"device":0,"context":1,"stream":{stream},'
            f'"correlation":{corr},"registers per thread":32,"shared memory":0,"blocks per SM":{b / 2},'
            f'"warps per SM":{m / 8},"grid":[{m},1,1],"block":[128,1,1],"est. achieved occupancy %":100}}}}'
        )
        lines.append(f'{{"ph":"f","id":{corr},"pid":0,"tid":{stream},"ts":{gpu_t:.3f},"cat":"ac2g","name":"ac2g","bp":"e"}}')
        gpu_t += kd + 1.0
        corr += 2
        t += d_outer + 1.5
    meta = [
        f'{{"name":"process_name","ph":"M","ts":0,"pid":{pid},"tid":0,"args":{{"name":"python3"}}}}',
        '{"name":"process_labels","ph":"M","ts":0,"pid":0,"tid":0,"args":{"labels":"GPU 0"}}',
        '{"name":"thread_name","ph":"M","ts":0,"pid":0,"tid":7,"args":{"name":"stream 7 "}}',
        '{"name":"thread_name","ph":"M","ts":0,"pid":0,"tid":20,"args":{"name":"stream 20 "}}',
    ]
    head = {
        "schemaVersion": 1,
        "deviceProperties": [{"id": 0, "name": "NVIDIA A100-SXM4-80GB", "totalGlobalMem": 85899345920, "numSms": 108}],
        "displayTimeUnit": "ms",
        "baseTimeNanoseconds": 1_735_632_360_000_000_000,
    }
    if epoch:
        del head["baseTimeNanoseconds"]
    body = ",\n".join(meta + lines)
    text = json.dumps(head)[:-1] + ',\n"traceEvents":[\n' + body + "\n]}\n"
    path.write_text(text)
    return path


def bench_file(n_events: int, epoch: bool = False) -> Path:
    CACHE.mkdir(exist_ok=True)
    p = CACHE / f"kineto_{'epoch_' if epoch else ''}{n_events}.json"
    if not p.exists():
        tmp = p.with_suffix(".tmp")
        make_kineto_file(tmp, n_events, epoch=epoch)
        tmp.rename(p)
    return p


def wall_and_cpu(fn: Any, repeat: int) -> tuple[float, float]:
    """Medians of wall-clock and CPU time (user + system of this process) of ``fn()``, after a warm-up."""
    fn()
    wall: list[float] = []
    cpu: list[float] = []
    for _ in range(repeat):
        gc.collect()
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


# ---- module-level targets for peak_memory (pickled into a child process)
def _orjson_load(path: str) -> None:
    import orjson

    orjson.loads(Path(path).read_bytes())


def _our_load(path: str) -> None:
    from profiler.formats import read_trace

    read_trace(path)


def _save_parquet(path: str, out: str) -> None:
    from profiler.formats import read_trace

    read_trace(path).save(out)


def _parquet_load(path: str) -> None:
    from profiler import Trace

    Trace.load(path)


def _hta_load(path: str) -> None:
    from hta.common.trace_parser import parse_trace_dataframe  # type: ignore[import-not-found]
    from hta.configs.parser_config import ParserConfig  # type: ignore[import-not-found]

    parse_trace_dataframe(path, ParserConfig())


def hta_import_error() -> str | None:
    """None when HolisticTraceAnalysis' loader imports here, else the import error in one line."""
    try:
        from hta.common.trace_parser import parse_trace_dataframe  # type: ignore[import-not-found]  # noqa: F401
    except Exception as exc:  # ImportError, or HTA failing inside its own imports
        return f"{type(exc).__name__}: {exc}".splitlines()[0]
    return None


def _orjson_read(path: Path, gc_on: bool) -> Any:
    """The baseline under the reader's conditions: from the path (page cache) to objects, with the
    cyclic GC as the reader has it (paused) or, for reference, on."""
    import orjson

    was = gc.isenabled()
    if not gc_on:
        gc.disable()
    try:
        return orjson.loads(path.read_bytes())
    finally:
        if was:
            gc.enable()


def main(quick: bool = False) -> None:
    from profiler import Trace
    from profiler.formats import read_trace

    n = 60_000 if quick else 1_000_000
    repeat = 3
    path = bench_file(n)
    epoch_path = bench_file(n, epoch=True)
    # Peak memory of each step in its own child process (the child's own peak RSS, interpreter
    # and imports included; for our reader the mapped file's pages count too).
    hta_missing: str | None = None
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.trace"
        peak_memory(_save_parquet, str(path), str(out))
        mem = {"orjson.loads": peak_memory(_orjson_load, str(path)),
               "read_trace (ours)": peak_memory(_our_load, str(path)),
               "read_trace (ours) epoch-us ts": peak_memory(_our_load, str(epoch_path)),
               "Trace.load (Parquet)": peak_memory(_parquet_load, str(out))}
        hta_missing = hta_import_error()
        if hta_missing is None:
            mem["HolisticTraceAnalysis parse_trace_dataframe"] = peak_memory(_hta_load, str(path))
    gc.collect()
    rows: list[dict[str, Any]] = []
    t_orjson = t_ours = 0.0
    for label, p in (("", path), (" epoch-us ts", epoch_path)):
        w_oj, c_oj = wall_and_cpu(partial(_orjson_read, p, True), repeat)
        w_ng, c_ng = wall_and_cpu(partial(_orjson_read, p, False), repeat)
        w_us, c_us = wall_and_cpu(partial(read_trace, p), repeat)
        rows.append({"step": "orjson.loads" + label, "events": n, "MB": round(p.stat().st_size / 1e6, 1),
                     "median_s": w_ng, "cpu_s": c_ng, "gc": "paused"})
        rows.append({"step": "read_trace (ours)" + label, "events": n, "median_s": w_us, "cpu_s": c_us, "gc": "paused",
                     "ratio_vs_orjson": w_us / w_ng, "cpu_ratio_vs_orjson": c_us / c_ng})
        rows.append({"step": "orjson.loads, for reference" + label, "events": n, "median_s": w_oj, "cpu_s": c_oj,
                     "gc": "on"})
        if not label:
            t_orjson, t_ours = w_ng, w_us
    trace = read_trace(path)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bench.trace"
        t_save, _ = median_time(lambda: trace.save(out), repeat=repeat)
        t_load, _ = median_time(lambda: Trace.load(out), repeat=repeat)
        size = sum(f.stat().st_size for f in out.iterdir()) / 1e6
        rows.append({"step": "Trace.save (Parquet)", "median_s": t_save, "MB": round(size, 1)})
        rows.append({"step": "Trace.load (Parquet)", "median_s": t_load, "ratio_vs_orjson": t_load / t_orjson})
    if hta_missing is None:
        t_hta, _ = median_time(lambda: _hta_load(str(path)), repeat=1, warmup=0)
        rows.append({"step": "HolisticTraceAnalysis parse_trace_dataframe", "median_s": t_hta,
                     "ratio_vs_orjson": t_hta / t_orjson, "hta_over_ours": t_hta / t_ours})
    else:
        rows.append({"step": f"HolisticTraceAnalysis: not timed, import failed ({hta_missing})"})
    for r in rows:
        if r["step"] in mem:
            r["peak_rss_mb"] = round(mem[r["step"]]["peak_rss_mb"], 1)
    report("json_load" + ("_quick" if quick else ""), rows)
    print(f"slices={trace.slices.num_rows} flows={trace.flows.num_rows} tracks={trace.tracks.num_rows} "
          f"at {time.strftime('%Y-%m-%d %H:%M')}")


if __name__ == "__main__":
    import sys

    main(quick="--quick" in sys.argv)
