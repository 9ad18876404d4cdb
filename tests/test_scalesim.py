"""SCALE-Sim collector: real SCALE-Sim runs, checked against SCALE-Sim's own report files.

The expected numbers are read straight from the CSVs SCALE-Sim wrote (kept with ``keep_dir``),
never from our reader, so a parsing mistake cannot agree with itself.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from collectors.scalesim import (
    ConvLayer,
    GemmLayer,
    ScaleSimConfig,
    ScaleSimError,
    find_scalesim_python,
    parse_gemm_shapes,
    read_scalesim_output,
    read_topology,
    run_scalesim,
)
from collectors.scalesim.topology import write_topology
from profiler import Trace
from profiler.errors import TraceFormatError

needs_scalesim = pytest.mark.skipif(
    find_scalesim_python(required=False) is None,
    reason="SCALE-Sim interpreter not found (set SCALESIM_PYTHON or create .venv-scalesim)",
)

# Small SRAMs and a narrow DRAM interface: the first layer stalls on memory, the second does not.
STALL_CFG = ScaleSimConfig(rows=8, cols=8, dataflow="os", ifmap_sram_kb=1, filter_sram_kb=1, ofmap_sram_kb=1,
                           bandwidth=2, word_size=2, run_name="stalls")
STALL_LAYERS = [GemmLayer("big", 64, 48, 80), GemmLayer("small", 7, 9, 5)]


def _report(path: Path) -> list[dict[str, str]]:
    with path.open() as f:
        rows = list(csv.reader(f, skipinitialspace=True))
    header = [h.strip() for h in rows[0] if h.strip()]
    return [dict(zip(header, [v.strip() for v in r], strict=False)) for r in rows[1:] if r]


@pytest.fixture(scope="module")
def stall_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trace, Path]:
    if find_scalesim_python(required=False) is None:
        pytest.skip("SCALE-Sim interpreter not found")
    keep = tmp_path_factory.mktemp("scalesim") / "run"
    progress: list[tuple[int, int]] = []
    trace = run_scalesim(STALL_CFG, STALL_LAYERS, keep_dir=keep, on_layer=lambda i, n: progress.append((i, n)))
    assert progress[0] == (0, 2) and progress[-1] == (2, 2)
    return trace, keep


def _layer_slices(trace: Trace):  # type: ignore[no-untyped-def]
    df = trace.slices_df()
    return df[(df["track_name"] == "systolic array") & (df["depth"] == 0)].sort_values("ts").reset_index(drop=True)


@needs_scalesim
def test_compute_slices_match_compute_report(stall_run: tuple[Trace, Path]) -> None:
    trace, keep = stall_run
    trace.validate()
    comp = _report(keep / "COMPUTE_REPORT.csv")
    layers = _layer_slices(trace)
    assert layers["name"].tolist() == ["big", "small"]
    # 1 GHz default clock: a nanosecond is a cycle.
    assert layers["dur"].tolist() == [int(r["Total Cycles"]) for r in comp]
    assert layers["flops"].tolist() == [2.0 * 64 * 48 * 80, 2.0 * 7 * 9 * 5]
    assert set(layers["dtype"]) == {"fp16"}  # word_size=2
    # Layers run back to back, each after the previous one's last DRAM write.
    assert layers.loc[1, "ts"] > layers.loc[0, "ts"] + layers.loc[0, "dur"]
    groups = trace.tracks_df()
    assert groups.loc[groups["kind"] == "group", "name"].tolist() == ["scalesim: 8x8 os"]


@needs_scalesim
def test_stall_slices_add_up_to_reported_stall_cycles(stall_run: tuple[Trace, Path]) -> None:
    trace, keep = stall_run
    comp = _report(keep / "COMPUTE_REPORT.csv")
    assert int(comp[0]["Stall Cycles"]) > 0 and int(comp[1]["Stall Cycles"]) == 0
    df = trace.slices_df()
    stalls = df[df["category"] == "stall"]
    assert (stalls["depth"] == 1).all() and (stalls["name"] == "stall: memory").all()
    layers = _layer_slices(trace)
    first = layers.loc[0]
    inside = stalls[(stalls["ts"] >= first["ts"]) & (stalls["ts"] + stalls["dur"] <= first["ts"] + first["dur"])]
    assert len(inside) == len(stalls)
    assert int(stalls["dur"].sum()) == int(comp[0]["Stall Cycles"])
    assert trace.metadata.import_stats.repaired == {}


@needs_scalesim
def test_dma_bytes_equal_dram_access_counts_times_word_size(stall_run: tuple[Trace, Path]) -> None:
    trace, keep = stall_run
    detail = _report(keep / "DETAILED_ACCESS_REPORT.csv")
    df = trace.slices_df()
    layers = _layer_slices(trace)
    bounds = [*layers["ts"].tolist(), np.iinfo(np.int64).max]
    cols = {"dram ifmap read": "DRAM IFMAP Reads", "dram filter read": "DRAM Filter Reads",
            "dram ofmap write": "DRAM OFMAP Writes"}
    for track, col in cols.items():
        dma = df[df["track_name"] == track]
        assert (dma["track_kind"] == "dma").all() and len(dma) > 0
        # Prefetch for layer i starts before its compute; attribute each burst to the last layer started
        # before the burst ends.
        which = np.searchsorted(np.array(bounds), (dma["ts"] + dma["dur"]).to_numpy(), side="right") - 1
        for i, row in enumerate(detail):
            got = dma.loc[which == i, "bytes"].sum()
            assert got == int(row[col]) * STALL_CFG.word_size, (track, i)
    # A compute slice's bytes are its layer's DRAM traffic.
    for i, row in enumerate(detail):
        want = sum(int(row[c]) for c in cols.values()) * STALL_CFG.word_size
        assert layers.loc[i, "bytes"] == want


@needs_scalesim
def test_counters_utilization_and_bandwidth(stall_run: tuple[Trace, Path]) -> None:
    trace, keep = stall_run
    comp = _report(keep / "COMPUTE_REPORT.csv")
    tracks = trace.tracks_df().set_index("name")
    ctr = trace.counters_df()
    eff = ctr[ctr["track"] == tracks.loc["mapping efficiency", "id"]]["value"].tolist()
    assert eff == pytest.approx([float(r["Mapping Efficiency %"]) / 100 for r in comp] + [0.0])
    util = ctr[ctr["track"] == tracks.loc["compute utilization", "id"]]["value"].tolist()
    assert util == pytest.approx([float(r["Compute Util %"]) / 100 for r in comp] + [0.0])
    bw = ctr[ctr["track"] == tracks.loc["dram bandwidth", "id"]].sort_values("ts")
    ts, val = bw["ts"].to_numpy(), bw["value"].to_numpy()
    # Integrating the bytes/ns step counter gives back every DMA byte.
    total = float(np.sum(val[:-1] * np.diff(ts)))
    dma_bytes = trace.slices_df().query("track_kind == 'dma'")["bytes"].sum()
    assert total == pytest.approx(dma_bytes, rel=1e-9)
    # 2 words/cycle x 2 bytes/word: never above the interface's 4 bytes per ns per operand stream.
    assert val.max() <= 3 * STALL_CFG.bandwidth * STALL_CFG.word_size


@needs_scalesim
def test_import_of_output_directory_matches_the_run(stall_run: tuple[Trace, Path], tmp_path: Path) -> None:
    trace, keep = stall_run
    again = read_scalesim_output(keep)
    assert again.slices_df(with_track_names=False)[["ts", "dur", "name", "bytes", "flops"]].equals(
        trace.slices_df(with_track_names=False)[["ts", "dur", "name", "bytes", "flops"]])
    # A bare SCALE-Sim directory (no config, no topology): FLOPs come from "Overall Util %" and the
    # array size read off the SRAM trace widths; bytes fall back to SCALE-Sim's 1-byte words.
    bare = tmp_path / "bare"
    shutil.copytree(keep, bare)
    (bare / "scalesim.cfg").unlink()
    (bare / "topology.csv").unlink()
    t = read_scalesim_output(bare)
    layers = _layer_slices(t)
    assert layers["flops"].tolist() == [2.0 * 64 * 48 * 80, 2.0 * 7 * 9 * 5]
    assert layers["name"].tolist() == ["layer0", "layer1"]
    assert layers["bytes"].tolist() == [b / 2 for b in _layer_slices(trace)["bytes"]]
    # Halving the clock doubles every duration.
    slow = read_scalesim_output(keep, clock_ghz=0.5)
    assert _layer_slices(slow)["dur"].tolist() == [2 * d for d in _layer_slices(trace)["dur"]]


@needs_scalesim
def test_damaged_report_keeps_layers_before_the_damage(stall_run: tuple[Trace, Path], tmp_path: Path) -> None:
    _, keep = stall_run
    bad = tmp_path / "bad"
    shutil.copytree(keep, bad)
    rep = bad / "COMPUTE_REPORT.csv"
    lines = rep.read_text().splitlines()
    rep.write_text("\n".join([*lines[:2], lines[2][:6]]) + "\n")  # second layer's row cut short
    t = read_scalesim_output(bad)
    assert _layer_slices(t)["name"].tolist() == ["big"]
    assert t.metadata.import_stats.dropped == {"bad row in COMPUTE_REPORT.csv": 1}
    rep.write_text(lines[0] + "\n0, 12, x,\n")
    with pytest.raises(TraceFormatError, match=r"COMPUTE_REPORT.csv \(line 2\): bad report row"):
        read_scalesim_output(bad)
    # A cycle trace cut mid-row keeps every row before the cut.
    shutil.copy(keep / "COMPUTE_REPORT.csv", rep)
    dram = bad / "layer1" / "IFMAP_DRAM_TRACE.csv"
    text = dram.read_text()
    dram.write_text(text[: text.rstrip().rfind("\n") + 4])
    t = read_scalesim_output(bad)
    assert t.metadata.import_stats.dropped == {"bad row in IFMAP_DRAM_TRACE.csv": 1}
    full = read_scalesim_output(keep).slices_df().query("track_name == 'dram ifmap read'")["bytes"].sum()
    cut = t.slices_df().query("track_name == 'dram ifmap read'")["bytes"].sum()
    assert cut == full - STALL_CFG.bandwidth * STALL_CFG.word_size  # one line of `bandwidth` words lost
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(TraceFormatError, match="missing SCALE-Sim report"):
        read_scalesim_output(empty)


@needs_scalesim
def test_conv_topology_flops_agree_with_scalesim_utilization(tmp_path: Path) -> None:
    cfg = ScaleSimConfig(rows=8, cols=8, dataflow="ws", run_name="conv")
    layers = [ConvLayer("conv1", 12, 12, 3, 3, 4, 8, 1), ConvLayer("conv2", 9, 9, 3, 3, 8, 6, 2)]
    topo, _ = write_topology(layers, tmp_path / "net.csv")
    assert read_topology(topo) == layers
    t = run_scalesim(cfg, topo, keep_dir=tmp_path / "out")
    got = _layer_slices(t)
    # conv1: 10x10 outputs x 8 filters x (3x3x4) window; conv2: 4x4 outputs (stride 2) x 6 x 72.
    assert got["flops"].tolist() == [2.0 * 100 * 8 * 36, 2.0 * 16 * 6 * 72]
    assert set(got["category"]) == {"conv"}
    bare = read_scalesim_output(tmp_path / "out", topology=None, config=None)
    assert _layer_slices(bare)["flops"].tolist() == got["flops"].tolist()


@needs_scalesim
def test_cli_runs_gemm_shapes_and_imports(tmp_path: Path) -> None:
    from profiler.cli import cli

    out = tmp_path / "g.trace"
    r = CliRunner().invoke(cli, ["scalesim", "--array", "4x4", "--dataflow", "is", "--gemm", "8x8x8,5x3x7",
                                 "--keep", str(tmp_path / "raw"), "-o", str(out)])
    assert r.exit_code == 0, r.output
    assert "2 layers" in r.output
    t = Trace.load(out)
    comp = _report(tmp_path / "raw" / "COMPUTE_REPORT.csv")
    assert _layer_slices(t)["dur"].tolist() == [int(x["Total Cycles"]) for x in comp]
    r = CliRunner().invoke(cli, ["scalesim", str(tmp_path / "raw"), "-o", str(tmp_path / "i.trace")])
    assert r.exit_code == 0, r.output


def test_cli_bad_input_exits_2(tmp_path: Path) -> None:
    from profiler.cli import cli

    cfg = tmp_path / "broken.cfg"
    cfg.write_text("[general]\nrun_name = x\n")
    r = CliRunner().invoke(cli, ["scalesim", str(cfg), "--gemm", "4x4x4", "-o", str(tmp_path / "x.trace")])
    assert r.exit_code == 2
    assert "[architecture_presets] ArrayHeight" in r.output
    r = CliRunner().invoke(cli, ["scalesim", "--gemm", "4x4", "-o", str(tmp_path / "x.trace")])
    assert r.exit_code == 2 and "MxNxK" in r.output


def test_missing_interpreter_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("SCALESIM_PYTHON", str(tmp_path / "no-python"))
    with pytest.raises(ScaleSimError, match="SCALESIM_PYTHON=.*cannot import scalesim"):
        run_scalesim(ScaleSimConfig(rows=4, cols=4), [GemmLayer("g", 4, 4, 4)])


def test_config_round_trip_and_topology_parsing(tmp_path: Path) -> None:
    cfg = ScaleSimConfig(rows=32, cols=16, dataflow="ws", ifmap_sram_kb=8, filter_sram_kb=4, ofmap_sram_kb=2,
                         bandwidth=16, word_size=2, clock_ghz=1.5, run_name="rt")
    assert ScaleSimConfig.read(cfg.write(tmp_path / "a.cfg")) == cfg
    assert [x.gemm for x in parse_gemm_shapes("64x32x16, 1x2x3")] == [(64, 32, 16), (1, 2, 3)]
    p, kind = write_topology([GemmLayer("a", 3, 4, 5)], tmp_path / "t.csv")
    assert kind == "gemm" and p.read_text().splitlines()[1].endswith(",")  # SCALE-Sim drops the last field
    assert read_topology(p) == [GemmLayer("a", 3, 4, 5)]
    with pytest.raises(ValueError, match="do not mix"):
        write_topology([GemmLayer("a", 3, 4, 5), ConvLayer("c", 5, 5, 3, 3, 1, 1)], tmp_path / "m.csv")
    (tmp_path / "bad.csv").write_text("Layer, M, N, K,\ng, 4, four, 4,\n")
    with pytest.raises(TraceFormatError, match=r"bad.csv \(line 2\): bad topology row"):
        read_topology(tmp_path / "bad.csv")
