"""``profiler simulate WORKLOAD -o TRACE``: run a workload on the accelerator simulator."""

from __future__ import annotations

import click

from profiler.cli.options import InputError, hw_option, resolve_spec, run_or_fail


def _parse_sets(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for p in pairs:
        if "=" not in p:
            raise InputError(f"--set {p!r}: expected key=value")
        k, v = p.split("=", 1)
        out[k.strip()] = v.strip()
    return out


@click.command()
@click.argument("workload")
@hw_option(default="edge-npu")
@click.option("--dtype", default=None, help="matmul dtype (int8, fp16, bf16, ...); default: the workload's or the spec's")
@click.option("--set", "sets", multiple=True, metavar="KEY=VALUE",
              help="override a workload field (M=4096, buffering=1, layers=4) or a simulator option "
                   "(systolic=true, sram_bytes=4e6, dram_bandwidth=1e11, dma_engines=4, mapper=off|fast|search)")
@click.option("-o", "--output", required=True, type=click.Path(), help="trace file; its extension picks the format")
@click.option("--format", "fmt", default=None, help="output format when the extension does not say")
@click.option("--progress/--no-progress", default=True, help="progress bar on long runs")
@click.option("--detail", type=click.Choice(["full", "summary"]), default=None,
              help="full: every instruction, stall, counter and flow; summary: one slice per op per engine "
                   "(same totals; large regular GEMMs and vector ops are simulated on a few waves, k-steps or "
                   "row tiles and extrapolated, --set sample=false for every instruction); also --set detail=...")
def simulate(workload: str, hw: str, dtype: str | None, sets: tuple[str, ...], output: str, fmt: str | None,
             progress: bool, detail: str | None) -> None:
    """Simulate WORKLOAD on an accelerator and write its trace.

    \b
    WORKLOAD: gemm, conv2d, elementwise, layernorm, softmax, attention, flash-attention,
              transformer-prefill, transformer-decode, cnn-encoder, llm-decode, llm-decode-7b,
              model families: resnet50, edge-encoder, vit, llm-prefill, llm-decode-gqa, llm-moe-decode,
              mamba, unet-step,
              or a model file: MODEL.onnx (shapes inferred) or MODEL.pt2 (torch.export.save),
              or a HuggingFace config.json (--set mode=prefill|decode, seq_len=, batch=, imbalance=)
    many devices (the spec's [system] interconnect; --set devices=, topology=, link_bandwidth=):
              allreduce, allgather, reducescatter, alltoall (--set bytes=, algorithm=ring|tree),
              llm-decode, llm-decode-7b, llm-prefill-7b with --set tp=, pp=, microbatches=,
              moe-decode (--set ep=, experts=, top_k=, imbalance=)
    \b
    profiler simulate gemm --set M=4096 --set buffering=1 -o gemm.pftrace
    profiler simulate llm-decode-7b --hw edge-npu --dtype int8 -o decode.trace
    profiler simulate llm-decode-7b --set tp=4 --set pp=2 --hw a100-sxm -o tp4pp2.pftrace
    profiler simulate allreduce --set bytes=1073741824 --set devices=8 --hw a100-sxm -o ar.pftrace
    profiler simulate encoder.onnx --hw edge-npu --dtype int8 -o encoder.pftrace
    profiler simulate path/to/config.json --set mode=prefill --set seq_len=1024 --hw a100-sxm -o p.pftrace
    """
    from collectors.simulator import SimOptions, SimulatorError, workload_from_name
    from collectors.simulator import simulate as run_sim
    from collectors.simulator.workloads import apply_overrides
    from profiler.formats import write_trace

    spec = resolve_spec(hw)
    assert spec is not None
    kv = _parse_sets(sets)
    from collectors.simulator.system import is_system_workload

    if is_system_workload(workload, set(kv)):
        _simulate_system(workload, spec, dtype, kv, output, fmt)
        return
    detail = kv.pop("detail", None) or detail or "full"
    if detail not in ("full", "summary"):
        raise InputError(f"--set detail={detail}: expected full or summary")
    opt_names = SimOptions.field_names()
    opt_kv = {k: v for k, v in kv.items() if k in opt_names}
    wl_kv = {k: v for k, v in kv.items() if k not in opt_names}
    from collectors.modelimport import is_model_path, load_model
    from collectors.simulator.families import hf_workload, is_hf_config

    unmodeled: tuple[str, ...] = ()
    try:
        if is_model_path(workload):
            if wl_kv:
                raise ValueError(f"--set {', '.join(wl_kv)}: a model file has no workload fields (options only)")
            w = run_or_fail(load_model, workload)
            unmodeled = w.unmodeled
        elif is_hf_config(workload):  # a HuggingFace config.json: --set mode=prefill|decode, seq_len, batch...
            w = hf_workload(workload, **wl_kv)
        else:
            w = workload_from_name(workload, **wl_kv)
        options = apply_overrides(SimOptions(), opt_kv, "option") if opt_kv else SimOptions()
    except ValueError as exc:
        raise InputError(str(exc)) from None
    try:
        res = run_or_fail(run_sim, w, spec, dtype=dtype, options=options, progress=progress, detail=detail)
    except SimulatorError as exc:  # pragma: no cover - run_or_fail turns ProfilerError into InputError
        raise InputError(str(exc)) from None
    written = run_or_fail(write_trace, res.trace, output, fmt)
    s = res.stats
    secs = res.total_ns * 1e-9
    achieved = s["flops"] / secs if secs > 0 else 0.0
    peak_dtype = dtype or next((d for d in res.trace.slices_df(with_track_names=False)["dtype"].dropna().unique()), None)
    try:
        pct = f"{100 * s['matrix_flops'] / secs / spec.peak(str(peak_dtype)):.1f}% of {peak_dtype} peak" if secs else "-"
    except Exception:
        pct = "-"
    click.echo(f"{workload} on {spec.name}: {res.total_ns / 1e6:.3f} ms ({res.total_cycles:,} cycles), "
               f"{achieved / 1e12:.2f} TFLOP/s ({pct}), DRAM {s['dram_bytes'] / secs / 1e9 if secs else 0:.1f} GB/s; "
               f"wrote {output} ({written}, {s['events']:,} events)")
    maps = s.get("mappings") or []
    for mp in maps[:8]:
        tile = f"{mp['tm']}x{mp['tn']}x{mp['tk']}" if mp.get("tm") else "planner tiles"
        click.echo(f"  mapping {mp['op']}: split={mp['split']} tile={tile} buffering={mp['buffering']} "
                   f"order={mp['order']} ({mp['how']})")
    if len(maps) > 8:
        click.echo(f"  ... {len(maps) - 8} more GEMM mappings in the trace metadata")
    if s.get("sampled_ops"):
        click.echo(f"  summary: {s['sampled_ops']} op(s) sampled (a few waves, k-steps or row tiles simulated, extended to "
                   "the whole op); --set sample=false simulates every instruction")
    if unmodeled:
        click.echo(f"  {len(unmodeled)} op(s) without a model of their own, simulated as memory traffic: "
                   + ", ".join(unmodeled[:12]) + (" ..." if len(unmodeled) > 12 else ""))


def _simulate_system(workload: str, spec: object, dtype: str | None, kv: dict[str, str], output: str,
                     fmt: str | None) -> None:
    """``simulate`` of a multi-device workload: one trace with a group per device."""
    from collectors.simulator.system import SYSTEM_KEYS, simulate_system, system_workload_from_name
    from profiler.formats import write_trace

    sys_kv: dict[str, object] = {k: kv.pop(k) for k in list(kv) if k in SYSTEM_KEYS}
    kv.pop("detail", None)  # every op is timed at summary detail already
    try:
        w = system_workload_from_name(workload, **kv)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    res = run_or_fail(simulate_system, w, spec, dtype=dtype, system=sys_kv)
    written = run_or_fail(write_trace, res.trace, output, fmt)
    s = res.stats
    secs = res.total_ns * 1e-9
    comm = max((d["link_ns"] for d in s["per_device"]), default=0)
    sent = sum(d["link_bytes"] for d in s["per_device"])
    sy = s["system"]
    click.echo(f"{workload} on {s['devices']} x {s['hardware']} ({sy['topology']}, "
               f"{sy['link_bandwidth'] / 1e9:.0f} GB/s links): {res.total_ns / 1e6:.3f} ms, "
               f"{s['collectives']} collectives, busiest link {comm / 1e6:.3f} ms, "
               f"{sent / secs / 1e9 if secs else 0:.1f} GB/s sent in all; wrote {output} ({written}, {s['events']:,} events)")
