"""Read a SCALE-Sim v3 output directory: its three reports and its per-layer cycle traces.

Layout of ``<run dir>`` (what ``scalesim.scale -p OUT`` leaves in ``OUT/<run_name>``)::

    COMPUTE_REPORT.csv           LayerID, Total Cycles (incl. prefetch), Total Cycles, Stall Cycles,
                                 Overall Util %, Mapping Efficiency %, Compute Util %
    BANDWIDTH_REPORT.csv         average SRAM/DRAM words per cycle per operand
    DETAILED_ACCESS_REPORT.csv   start/stop cycle and access count of every SRAM and DRAM stream
    layer<i>/{IFMAP,FILTER,OFMAP}_{SRAM,DRAM}_TRACE.csv
                                 one row per cycle: the cycle, then one address per port (-1: idle)

What the numbers mean (from SCALE-Sim's ``double_buffered_scratchpad_mem`` and buffers):

* cycle 0 is the first compute cycle; DRAM prefetches before it carry negative cycles;
* "Total Cycles" is the cycle of the last OFMAP SRAM write, stalls included; "incl. prefetch" runs
  from the first DRAM read to the last DRAM write;
* a DRAM *read* row moves a whole line of ``bandwidth`` words, and the report counts every slot of
  it (padding too); an OFMAP *drain* to DRAM is charged whole lines too, except the padding of the
  drain's last line (a drain is a run of consecutive cycles).  We count bytes the same way, so the
  trace's DMA bytes equal the report's access counts times the word size (``valid_words`` keeps
  the real addresses);
* stalls: row ``i`` of the demand matrices is issued at cycle ``r_i``; each SRAM trace's first
  column is when that row was served (reads after a 1-cycle hit latency).  The array waits until
  the slowest of the three is served, so ``r_{i+1} = max(ifmap - 1, filter - 1, ofmap) + 1`` and
  row ``i`` stalled ``r_{i+1} - 1 - r_i`` cycles; these add up to the report's "Stall Cycles".
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pv

from collectors.scalesim.config import ScaleSimConfig
from collectors.scalesim.topology import Layer, read_topology
from profiler.errors import TraceFormatError
from profiler.model import ImportStats

OPERANDS = ("ifmap", "filter", "ofmap")
#: DETAILED_ACCESS_REPORT columns that count each DRAM trace's words.
_DRAM_COUNT_KEY = {"ifmap": "DRAM IFMAP Reads", "filter": "DRAM Filter Reads", "ofmap": "DRAM OFMAP Writes"}
SRAM_HIT_LATENCY = 1  # read_buffer.hit_latency in SCALE-Sim 3.0


@dataclass
class DramStream:
    """DRAM activity of one operand in one layer: per active cycle, words moved as SCALE-Sim counts."""

    cycles: np.ndarray  # int64, sorted, unique
    words: np.ndarray  # int64, words charged in that cycle (read: whole line; write: real addresses)
    valid_words: np.ndarray  # int64, real addresses in that cycle


@dataclass
class LayerResult:
    index: int
    name: str
    overall_cycles: int  # "Total Cycles (incl. prefetch)"
    compute_cycles: int  # "Total Cycles": compute and stalls
    stall_cycles: int
    overall_util: float  # percent
    mapping_efficiency: float  # percent
    compute_util: float  # percent
    detail: dict[str, float] = field(default_factory=dict)  # DETAILED_ACCESS_REPORT row
    bandwidth: dict[str, float] = field(default_factory=dict)  # BANDWIDTH_REPORT row
    dram: dict[str, DramStream] = field(default_factory=dict)
    stall_start: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # compute cycles
    stall_dur: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    layer: Layer | None = None  # from the topology, when known
    pes: int | None = None  # rows x cols, from the config or the SRAM trace widths

    @property
    def macs(self) -> int | None:
        """Multiply-accumulates: from the topology, else recovered from "Overall Util %"."""
        if self.layer is not None:
            return self.layer.macs
        if self.pes:
            return int(round(self.overall_util / 100.0 * self.compute_cycles * self.pes))
        return None

    def dram_count(self, operand: str) -> int:
        """The report's DRAM access count for ``operand`` (reads for ifmap/filter, writes for ofmap)."""
        key = f"DRAM {'OFMAP Writes' if operand == 'ofmap' else ('IFMAP Reads' if operand == 'ifmap' else 'Filter Reads')}"
        return int(self.detail.get(key, 0))


@dataclass
class ScaleSimResult:
    run_dir: Path
    layers: list[LayerResult]
    config: ScaleSimConfig | None
    stats: ImportStats


def _read_report(path: Path, stats: ImportStats, required: bool) -> tuple[list[str], list[list[float]]]:
    """(header, numeric rows) of a SCALE-Sim report; rows after a damaged one are dropped and counted."""
    if not path.exists():
        if required:
            raise TraceFormatError(str(path), "missing SCALE-Sim report (is this a SCALE-Sim output directory?)")
        stats.drop(f"missing {path.name}")
        return [], []
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFormatError(str(path), "unreadable report", str(exc)) from None
    lines = text.splitlines()
    if lines and text and not text.endswith("\n") and len(lines) > 1:
        # SCALE-Sim ends every row with a newline: a last row without one was cut short.
        lines.pop()
        stats.drop(f"bad row in {path.name}")
    if not lines:
        if required:
            raise TraceFormatError(str(path), "empty report")
        stats.drop(f"empty {path.name}")
        return [], []
    header = [h.strip() for h in lines[0].split(",") if h.strip()]
    rows: list[list[float]] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        if not raw.strip():
            continue
        fields = [f.strip() for f in raw.split(",")]
        if fields and fields[-1] == "":
            fields = fields[:-1]
        try:
            if len(fields) != len(header):
                raise ValueError(f"{len(fields)} fields, header has {len(header)}")
            rows.append([float(f) for f in fields])
        except ValueError as exc:
            if not rows and required:
                raise TraceFormatError(str(path), "bad report row", str(exc), where=f"line {lineno}") from None
            stats.drop(f"bad row in {path.name}", len(lines) - lineno + 1)
            break
    return header, rows


def _read_trace(path: Path, stats: ImportStats) -> np.ndarray:
    """A cycle trace as a 2-D float array (column 0: cycle); rows from the first damaged one on are dropped."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(str(path), "unreadable SCALE-Sim trace", str(exc)) from None
    if data and not data.endswith(b"\n"):
        # SCALE-Sim ends every row with a newline: a last row without one was cut short.
        data = data[: data.rfind(b"\n") + 1]
        stats.drop(f"bad row in {path.name}")
    if not data:
        return np.zeros((0, 1))
    try:
        t = pv.read_csv(pa.py_buffer(data), read_options=pv.ReadOptions(autogenerate_column_names=True))
        return np.column_stack([c.to_numpy(zero_copy_only=False).astype(np.float64) for c in t.columns])
    except (pa.ArrowInvalid, ValueError, TypeError):
        pass
    # Slow path, only for damaged files: keep the rows before the damage (rows end with a comma).
    rows: list[list[float]] = []
    lines = data.decode(errors="replace").splitlines()
    for lineno, line in enumerate(lines, start=1):
        try:
            fields = line.split(",")
            if fields[-1].strip() == "":
                fields.pop()
            vals = [float(v) for v in fields]
            if not vals or (rows and len(vals) != len(rows[0])):
                raise ValueError(f"{len(vals)} fields, earlier rows have {len(rows[0]) if rows else '?'}")
        except ValueError:
            stats.drop(f"bad row in {path.name}", len(lines) - lineno + 1)
            break
        rows.append(vals)
    if not rows:
        return np.zeros((0, 1))
    return np.asarray(rows, dtype=np.float64)


def _dram_stream(path: Path, is_write: bool, stats: ImportStats) -> DramStream:
    a = _read_trace(path, stats)
    if a.shape[0] == 0:
        z = np.zeros(0, np.int64)
        return DramStream(z, z, z)
    cyc = a[:, 0].astype(np.int64)
    valid = (a[:, 1:] != -1).sum(axis=1).astype(np.int64)
    words = np.full(cyc.size, a.shape[1] - 1, np.int64)
    if is_write:
        # A drain is charged whole lines except the padding of its last line; drains are runs of
        # consecutive cycles, so the row before each break (and the final row) loses its padding.
        last = np.concatenate([np.flatnonzero(np.diff(cyc) != 1), [cyc.size - 1]])
        words[last] = valid[last]
    uc, inv = np.unique(cyc, return_inverse=True)
    return DramStream(uc, np.bincount(inv, weights=words).astype(np.int64),
                      np.bincount(inv, weights=valid).astype(np.int64))


def stall_windows(ifmap_served: np.ndarray, filter_served: np.ndarray, ofmap_served: np.ndarray,
                  hit_latency: int = SRAM_HIT_LATENCY) -> tuple[np.ndarray, np.ndarray, int]:
    """Reconstruct (start cycle, length) of every stall and the last compute cycle (module docstring)."""
    n = min(ifmap_served.size, filter_served.size, ofmap_served.size)
    if n == 0:
        z = np.zeros(0, np.int64)
        return z, z, 0
    e = np.maximum(np.maximum(ifmap_served[:n] - hit_latency, filter_served[:n] - hit_latency), ofmap_served[:n])
    e = e.astype(np.int64)
    r = np.concatenate([[0], e[:-1] + 1])
    s = e - r
    hit = s > 0
    return r[hit], s[hit], int(e[-1])


def _find_side_file(run_dir: Path, pattern: str) -> Path | None:
    for d in (run_dir, run_dir.parent):
        hits = sorted(d.glob(pattern))
        if hits:
            return hits[0]
    return None


def read_scalesim_result(
    run_dir: str | Path,
    config: ScaleSimConfig | None = None,
    layers: list[Layer] | None = None,
) -> ScaleSimResult:
    """Parse a SCALE-Sim run directory (the one holding COMPUTE_REPORT.csv).

    Without ``config``/``layers``, a ``*.cfg`` and a topology ``*.csv`` in the directory or its
    parent are used when present (:func:`collectors.scalesim.run_scalesim` leaves them there).
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise TraceFormatError(str(d), "not a directory")
    if not (d / "COMPUTE_REPORT.csv").exists():
        subs = [s for s in sorted(d.iterdir()) if s.is_dir() and (s / "COMPUTE_REPORT.csv").exists()]
        if len(subs) == 1:
            d = subs[0]
    stats = ImportStats()
    if config is None:
        cfg_path = _find_side_file(d, "*.cfg")
        if cfg_path is not None:
            try:
                config = ScaleSimConfig.read(cfg_path)
            except TraceFormatError:  # the array size is also in the traces' widths
                stats.repair("unreadable config, array size from the traces")
    if layers is None:
        topo_path = _find_side_file(d, "topology*.csv")
        if topo_path is not None:
            try:
                layers = read_topology(topo_path)
            except TraceFormatError:  # only names and shapes come from it: read the run without them
                stats.repair("unreadable topology, layers named by index")

    _, comp = _read_report(d / "COMPUTE_REPORT.csv", stats, required=True)
    bw_header, bw = _read_report(d / "BANDWIDTH_REPORT.csv", stats, required=False)
    det_header, det = _read_report(d / "DETAILED_ACCESS_REPORT.csv", stats, required=False)
    if not comp:
        raise TraceFormatError(str(d / "COMPUTE_REPORT.csv"), "no layers in report")
    if layers is not None and len(layers) < len(comp):
        # Not this run's topology: names and shapes would be attached to the wrong layers.
        stats.repair("topology has fewer layers than the report", len(comp) - len(layers))
        layers = None

    out: list[LayerResult] = []
    for i, row in enumerate(comp):
        lid = int(row[0])
        lr = LayerResult(
            index=lid,
            name=layers[i].name if layers else f"layer{lid}",
            overall_cycles=int(row[1]), compute_cycles=int(row[2]), stall_cycles=int(row[3]),
            overall_util=row[4], mapping_efficiency=row[5], compute_util=row[6],
            layer=layers[i] if layers else None,
            pes=config.rows * config.cols if config else None,
        )
        if i < len(det):
            lr.detail = dict(zip(det_header[1:], det[i][1:], strict=False))
        if i < len(bw):
            lr.bandwidth = dict(zip(bw_header[1:], bw[i][1:], strict=False))
        stats.events_read += 1
        ldir = d / f"layer{lid}"
        if ldir.is_dir():
            _read_layer_traces(ldir, lr, stats)
        else:
            stats.drop("layer trace directory missing")
        out.append(lr)
    return ScaleSimResult(run_dir=d, layers=out, config=config, stats=stats)


def _read_layer_traces(ldir: Path, lr: LayerResult, stats: ImportStats) -> None:
    for op in OPERANDS:
        p = ldir / f"{op.upper()}_DRAM_TRACE.csv"
        if p.exists():
            bad_rows = stats.events_dropped
            lr.dram[op] = _dram_stream(p, is_write=(op == "ofmap"), stats=stats)
            stats.events_read += int(lr.dram[op].cycles.size)
            want = lr.detail.get(_DRAM_COUNT_KEY[op])
            if stats.events_dropped == bad_rows and want is not None and int(lr.dram[op].words.sum()) < want:
                stats.drop(f"{p.name} holds fewer words than the report")  # emptied or cut at a row end
        else:
            stats.drop("DRAM trace file missing")
    served = []
    widths = []
    for op in OPERANDS:
        p = ldir / f"{op.upper()}_SRAM_TRACE.csv"
        if not p.exists():
            stats.drop("SRAM trace file missing")
            return
        a = _read_trace(p, stats)
        served.append(a[:, 0].astype(np.int64))
        widths.append(a.shape[1] - 1)
    if lr.pes is None:
        # ifmap x filter port counts: R x C for os/ws and C x R for is.
        lr.pes = widths[0] * widths[1]
    lr.stall_start, lr.stall_dur, last = stall_windows(served[0], served[1], served[2])
    if int(lr.stall_dur.sum()) != lr.stall_cycles or last != lr.compute_cycles:
        stats.repair("stall windows disagree with report")
