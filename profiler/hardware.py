"""Hardware specs: the ceilings every analysis is measured against.

A :class:`HardwareSpec` holds per-dtype peak FLOP/s, memory levels (bandwidth, capacity), DMA
engines and core counts.  Presets ship as TOML files in ``profiler/specs/`` with the public
source of each figure in a comment; users load their own file with :func:`load_spec`.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from profiler.errors import SpecError
from profiler.system import SystemSpec, system_from_dict

#: dtype names a spec may give a peak for; aliases map common spellings to these.
DTYPES = ("fp64", "fp32", "tf32", "bf16", "fp16", "fp8", "int8", "int4")
DTYPE_ALIASES = {
    "float64": "fp64", "double": "fp64", "float32": "fp32", "float": "fp32", "float16": "fp16",
    "half": "fp16", "bfloat16": "bf16", "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8",
    "e4m3": "fp8", "e5m2": "fp8", "int8": "int8", "uint8": "int8", "i8": "int8", "int4": "int4",
}
DTYPE_BYTES = {"fp64": 8, "fp32": 4, "tf32": 4, "bf16": 2, "fp16": 2, "fp8": 1, "int8": 1, "int4": 0.5}


def canonical_dtype(name: str) -> str:
    """'torch.bfloat16', 'BF16', 'bfloat16' -> 'bf16'.  Unknown names are returned lower-cased."""
    n = str(name).strip().lower().removeprefix("torch.").removeprefix("np.")
    return DTYPE_ALIASES.get(n, n)


@dataclass(frozen=True)
class MemoryLevel:
    """One level of the memory hierarchy (e.g. SRAM, L2, HBM)."""

    name: str
    bandwidth: float  # bytes/s, aggregate over the chip
    capacity: float  # bytes
    kind: str = "dram"  # "sram" (on-chip) or "dram" (off-chip)


@dataclass(frozen=True)
class DmaSpec:
    engines: int  # DMA engines (queues) per core
    bandwidth: float  # bytes/s per engine
    latency_ns: float  # fixed cost per transfer


@dataclass(frozen=True)
class SystolicArray:
    rows: int
    cols: int
    dataflow: str = "os"  # os (output), ws (weight) or is (input stationary)


#: op kinds a [timing] table may give a fixed cost for ("default" covers the rest)
OP_KINDS = ("gemm", "attention", "softmax", "layernorm", "gelu", "elementwise", "vector")


@dataclass(frozen=True)
class TimingSpec:
    """How the device falls short of its peaks: the calibratable ``[timing]`` table of a spec.

    Every field has a neutral default (no fixed costs, full efficiency, the [dma] engines for
    tile loads, no shared cache), so a spec without ``[timing]`` simulates as the bare peaks say.
    ``profiler calibrate`` fits the efficiency and overhead keys (:data:`FIT_KEYS`) to measurements.
    """

    #: device-side fixed cost of one op (kernel launch, first-wave ramp, tail), per op kind
    launch_ns: dict[str, float] = field(default_factory=dict)
    #: host-side dispatch of one op, overlapped with the device's work (a timed loop of calls takes
    #: max(host, device) per call), per op kind
    host_ns: dict[str, float] = field(default_factory=dict)
    dram_efficiency: float = 1.0  # achievable / peak DRAM bandwidth
    matmul_efficiency: dict[str, float] = field(default_factory=dict)  # achievable / peak matrix rate, per dtype
    vector_efficiency: float = 1.0  # achievable / peak vector rate
    core_sram_bytes: float = 0.0  # a core's own working storage (GPU: shared memory + registers); 0: share of SRAM level
    core_sram_bandwidth: float = 0.0  # bytes/s of one core's working storage; 0: share of the SRAM level
    load_bandwidth: float = 0.0  # bytes/s one core can load tiles at (all its queues); 0: the [dma] figures
    load_latency_ns: float = -1.0  # fixed cost of one tile load; < 0: the [dma] figure
    load_queues: int = 0  # tile-load queues per core; 0: [dma] engines
    llc: str = ""  # memory level shared by all cores that keeps recently read DRAM data ("" none)
    pipeline_k: int = 0  # k-slice of a core's matmul software pipeline (SRAM held per stage); 0: the tile's k
    tile_sizes: tuple[int, ...] = ()  # matmul tile edges the mapper may use (a GPU library's CTA tiles); () any
    #: longest row (bytes) a row-wise vector kernel keeps on chip between its statistics and output
    #: passes; a longer row is read from DRAM again (0: rows always stay)
    vector_row_bytes: float = 0.0

    def launch(self, kind: str) -> float:
        return self.launch_ns.get(kind, self.launch_ns.get("default", 0.0))

    def host(self, kind: str) -> float:
        return self.host_ns.get(kind, self.host_ns.get("default", 0.0))

    def matmul(self, dtype: str) -> float:
        return self.matmul_efficiency.get(dtype, self.matmul_efficiency.get("default", 1.0))

    def to_dict(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["tile_sizes"] = list(self.tile_sizes)
        return d


#: the [timing] keys `profiler calibrate` may fit: scalar keys and per-kind/per-dtype tables
FIT_KEYS = ("dram_efficiency", "matmul_efficiency", "vector_efficiency", "launch_ns", "host_ns")


@dataclass(frozen=True)
class HardwareSpec:
    """Peak figures of one accelerator (a chip, or a tile of chips presented as one device)."""

    name: str
    description: str
    clock_hz: float
    cores: int
    peak_flops: dict[str, float]  # dtype -> FLOP/s for the whole device (dense)
    memory: tuple[MemoryLevel, ...]
    dma: DmaSpec
    vector_flops: float = 0.0  # FLOP/s of the vector/SIMD units (elementwise, norms, softmax)
    systolic: SystolicArray | None = None
    sources: dict[str, str] = field(default_factory=dict)
    timing: TimingSpec = field(default_factory=TimingSpec)
    system: SystemSpec | None = None  # how several such devices are wired ([system]); None: one device

    def peak(self, dtype: str) -> float:
        """Peak FLOP/s for ``dtype``; raises SpecError if the device has no such datapath."""
        d = canonical_dtype(dtype)
        if d not in self.peak_flops:
            raise SpecError(f"{self.name}: no peak for dtype {dtype!r}; the spec knows {', '.join(sorted(self.peak_flops))}")
        return self.peak_flops[d]

    def supports(self, dtype: str) -> bool:
        return canonical_dtype(dtype) in self.peak_flops

    def memory_level(self, name: str) -> MemoryLevel:
        for m in self.memory:
            if m.name == name:
                return m
        raise SpecError(f"{self.name}: no memory level {name!r}; levels are {', '.join(m.name for m in self.memory)}")

    @property
    def dram(self) -> MemoryLevel:
        """The outermost (lowest-bandwidth off-chip) level: what roofline's memory roof uses by default."""
        off = [m for m in self.memory if m.kind == "dram"] or list(self.memory)
        return min(off, key=lambda m: m.bandwidth)

    @property
    def sram(self) -> MemoryLevel | None:
        on = [m for m in self.memory if m.kind == "sram"]
        return on[0] if on else None

    def ridge_point(self, dtype: str, level: str | None = None) -> float:
        """Arithmetic intensity (FLOP/byte) where compute and memory roofs meet."""
        mem = self.memory_level(level) if level else self.dram
        return self.peak(dtype) / mem.bandwidth

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "description": self.description, "clock_hz": self.clock_hz, "cores": self.cores,
            "peak_flops": dict(self.peak_flops), "vector_flops": self.vector_flops,
            "memory": [m.__dict__ for m in self.memory], "dma": self.dma.__dict__,
            "systolic": self.systolic.__dict__ if self.systolic else None,
            "timing": self.timing.to_dict(),
            **({"system": self.system.to_dict()} if self.system is not None else {}),
        }


# ------------------------------------------------------------------ parsing
def _req(d: dict[str, Any], key: str, where: str, kind: type | tuple[type, ...] = (int, float)) -> Any:
    if key not in d:
        raise SpecError(f"{where}: missing required key {key!r}")
    v = d[key]
    if isinstance(v, bool) or not isinstance(v, kind):
        raise SpecError(f"{where}: {key!r} must be {getattr(kind, '__name__', 'a number')}, got {type(v).__name__} {v!r}")
    if isinstance(v, int | float) and not (0 < v < math.inf):
        raise SpecError(f"{where}: {key!r} must be positive and finite, got {v!r}")
    return v


def _opt(d: dict[str, Any], key: str, where: str, default: float) -> float:
    """An optional number: absent gives ``default``; present must be a finite number >= 0."""
    v = d.get(key, default)
    if isinstance(v, bool) or not isinstance(v, int | float) or not (0 <= v < math.inf):
        raise SpecError(f"{where}: {key!r} must be a finite number >= 0, got {v!r}")
    return float(v)


def _table(d: dict[str, Any], key: str, where: str) -> dict[str, Any]:
    v = d.get(key) or {}
    if not isinstance(v, dict):
        raise SpecError(f"{where}: {key!r} must be a table, got {type(v).__name__} {v!r}")
    return v


def spec_from_dict(d: dict[str, Any], origin: str = "<spec>") -> HardwareSpec:
    """Build and check a spec from a parsed TOML document; errors name ``origin`` and the key."""
    if not isinstance(d, dict):
        raise SpecError(f"{origin}: a spec is a table of keys")
    name = _req(d, "name", origin, str)
    where = f"{origin} [{name}]"
    peaks_raw = _req(d, "peak_flops", where, dict)
    peaks: dict[str, float] = {}
    for k in peaks_raw:
        dt = canonical_dtype(k)
        if dt not in DTYPES:
            raise SpecError(f"{where}: peak_flops.{k}: unknown dtype; use one of {', '.join(DTYPES)}")
        peaks[dt] = float(_req(peaks_raw, k, f"{where} peak_flops"))
    if not peaks:
        raise SpecError(f"{where}: peak_flops is empty")
    mem_raw = _req(d, "memory", where, list)
    memory = []
    for i, m in enumerate(mem_raw):
        w = f"{where} memory[{i}]"
        if not isinstance(m, dict):
            raise SpecError(f"{w}: must be a table")
        kind = m.get("kind", "dram")
        if kind not in ("sram", "dram"):
            raise SpecError(f"{w}: kind must be 'sram' or 'dram', got {kind!r}")
        memory.append(MemoryLevel(_req(m, "name", w, str), float(_req(m, "bandwidth", w)), float(_req(m, "capacity", w)), kind))
    if not memory:
        raise SpecError(f"{where}: at least one memory level is required")
    dma_raw = _req(d, "dma", where, dict)
    dma = DmaSpec(int(_req(dma_raw, "engines", f"{where} dma", int)), float(_req(dma_raw, "bandwidth", f"{where} dma")),
                  _opt(dma_raw, "latency_ns", f"{where} dma", 0.0))
    systolic = None
    if "systolic" in d:
        s = _table(d, "systolic", where)
        w = f"{where} systolic"
        flow = s.get("dataflow", "os")
        if flow not in ("os", "ws", "is"):
            raise SpecError(f"{w}: dataflow must be os, ws or is, got {flow!r}")
        systolic = SystolicArray(int(_req(s, "rows", w, int)), int(_req(s, "cols", w, int)), flow)
    timing = timing_from_dict(_table(d, "timing", where), f"{where} timing", {m.name for m in memory})
    system = system_from_dict(_table(d, "system", where), f"{where} system") if "system" in d else None
    known = {"name", "description", "clock_hz", "cores", "peak_flops", "memory", "dma", "vector_flops", "systolic",
             "sources", "timing", "system"}
    extra = set(d) - known
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    return HardwareSpec(
        name=name,
        description=str(d.get("description", "")),
        clock_hz=float(_req(d, "clock_hz", where)),
        cores=int(_req(d, "cores", where, int)),
        peak_flops=peaks,
        memory=tuple(memory),
        dma=dma,
        vector_flops=_opt(d, "vector_flops", where, 0.0),
        systolic=systolic,
        sources={str(k): str(v) for k, v in _table(d, "sources", where).items()},
        timing=timing,
        system=system,
    )


def _fraction(d: dict[str, Any], key: str, where: str) -> float:
    v = _opt(d, key, where, 1.0)
    if not 0 < v <= 1:
        raise SpecError(f"{where}: {key!r} must be in (0, 1], got {v!r}")
    return v


def _per_key(d: dict[str, Any], key: str, where: str, allowed: tuple[str, ...], fraction: bool) -> dict[str, float]:
    """A number (the default for every kind) or a table keyed by ``allowed`` names and 'default'."""
    v = d.get(key)
    if v is None:
        return {}
    if not isinstance(v, dict):
        v = {"default": v}
    out: dict[str, float] = {}
    for k in v:
        name = canonical_dtype(k) if allowed is DTYPES else str(k)
        if name != "default" and name not in allowed:
            raise SpecError(f"{where}: {key}.{k}: unknown name; use default or one of {', '.join(allowed)}")
        out[name] = _fraction(v, k, f"{where} {key}") if fraction else _opt(v, k, f"{where} {key}", 0.0)
    return out


_TIMING_KEYS = {f for f in TimingSpec.__dataclass_fields__}


def timing_from_dict(t: dict[str, Any], where: str, levels: set[str] | None = None) -> TimingSpec:
    """Check and build the [timing] table; errors name the key."""
    extra = set(t) - _TIMING_KEYS
    if extra:
        raise SpecError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    llc = t.get("llc", "")
    if not isinstance(llc, str) or (llc and levels is not None and llc not in levels):
        raise SpecError(f"{where}: 'llc' must name a memory level, got {llc!r}")
    tiles = t.get("tile_sizes", [])
    if not isinstance(tiles, list) or not all(isinstance(x, int) and not isinstance(x, bool) and x > 0 for x in tiles):
        raise SpecError(f"{where}: 'tile_sizes' must be a list of positive integers, got {tiles!r}")
    queues = t.get("load_queues", 0)
    pk = t.get("pipeline_k", 0)
    for key, v in (("load_queues", queues), ("pipeline_k", pk)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise SpecError(f"{where}: {key!r} must be an integer >= 0, got {v!r}")
    lat = t.get("load_latency_ns", -1.0)
    return TimingSpec(
        launch_ns=_per_key(t, "launch_ns", where, OP_KINDS, False),
        host_ns=_per_key(t, "host_ns", where, OP_KINDS, False),
        dram_efficiency=_fraction(t, "dram_efficiency", where),
        matmul_efficiency=_per_key(t, "matmul_efficiency", where, DTYPES, True),
        vector_efficiency=_fraction(t, "vector_efficiency", where),
        core_sram_bytes=_opt(t, "core_sram_bytes", where, 0.0),
        core_sram_bandwidth=_opt(t, "core_sram_bandwidth", where, 0.0),
        load_bandwidth=_opt(t, "load_bandwidth", where, 0.0),
        load_latency_ns=-1.0 if lat == -1.0 else _opt(t, "load_latency_ns", where, 0.0),
        load_queues=int(queues),
        llc=llc,
        pipeline_k=int(pk),
        tile_sizes=tuple(sorted(set(tiles))),
        vector_row_bytes=_opt(t, "vector_row_bytes", where, 0.0),
    )


def preset_names() -> list[str]:
    return sorted(p.name[:-5] for p in resources.files("profiler.specs").iterdir() if p.name.endswith(".toml"))


def load_spec(name_or_path: str | Path) -> HardwareSpec:
    """A preset by name (``h100-sxm``) or a user's TOML file by path."""
    s = str(name_or_path)
    if s in preset_names():
        text = resources.files("profiler.specs").joinpath(f"{s}.toml").read_text()
        origin = f"preset {s}"
    else:
        p = Path(s)
        if not p.is_file():
            raise SpecError(f"{s}: not a preset ({', '.join(preset_names())}) and no such file")
        try:
            text = p.read_text()
        except (OSError, UnicodeDecodeError) as exc:
            raise SpecError(f"{p}: unreadable spec: {exc}") from None
        origin = str(p)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise SpecError(f"{origin}: invalid TOML: {exc}") from None
    return spec_from_dict(doc, origin)
