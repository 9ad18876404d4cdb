"""The simulated machine: what one HardwareSpec (plus SimOptions) turns into.

The spec's ``[timing]`` table (:class:`profiler.hardware.TimingSpec`) makes the peaks achievable
ones: DRAM bandwidth and matrix/vector rates times their efficiencies, a core's tile loads over
its own load path (a GPU SM's share of the L2 bandwidth, not the host copy engines of ``[dma]``),
a core's own working storage (a GPU SM's shared memory and registers), and the op fixed costs.

Per core the machine has a matrix engine, a vector engine, SRAM of a fixed capacity and
``dma.engines`` DMA queues; all cores share one DRAM whose bandwidth the active transfers divide.
Rates are derived here once so the compiler and the event engine never re-read the spec.

Compute timing (why no instruction can beat the roofline of the memory it reads): an engine
instruction takes ``max(flops / effective peak, SRAM bytes / SRAM bandwidth per core)``.  The
operands of a matmul or vector instruction stream from and to the core's SRAM, so its SRAM
traffic (operands read plus results written, the ``bytes`` of its trace slice) bounds it as
much as its FLOPs do.  The effective matmul peak is the per-core peak for the dtype scaled by
how much of the MAC array a tile can keep busy (see :meth:`Machine.array_utilization`); in
systolic mode the calibrated fold model (``systolic_tile_cycles``) gives the compute time instead.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from profiler.errors import ProfilerError
from profiler.hardware import DTYPE_BYTES, HardwareSpec, canonical_dtype


class SimulatorError(ProfilerError):
    """A workload the simulator cannot run as asked (tile too large for SRAM, dtype the spec lacks, ...)."""


@dataclass(frozen=True)
class SimOptions:
    """Knobs that reconfigure the spec the way a SCALE-Sim config would, plus simulator switches.

    Every ``None`` means "what the spec says".  ``sram_bytes`` is per core.
    """

    systolic: bool = False  # time matmul tiles with the systolic-array model instead of peak FLOP/s
    systolic_rows: int | None = None
    systolic_cols: int | None = None
    dataflow: str | None = None  # os | ws | is
    sram_bytes: float | None = None  # SRAM capacity per core
    dram_bandwidth: float | None = None  # bytes/s shared by all cores
    dma_engines: int | None = None  # DMA queues per core
    dma_bandwidth: float | None = None  # bytes/s per queue
    dma_latency_ns: float | None = None  # fixed cost per transfer
    sram_bandwidth: float | None = None  # bytes/s of one core's SRAM (operand traffic of its engines)
    cores: int | None = None  # use only this many cores
    flows: bool = True  # DMA -> consumer flow arrows in the trace
    counters: bool = True  # SRAM occupancy and DRAM bandwidth counter tracks
    # Compile and simulate each distinct op once and place its schedule wherever it repeats (the
    # layers of an LLM).  Exact: every op starts on an idle machine (see collectors.simulator.program).
    reuse: bool = True
    # How ops are mapped onto the cores: off (the compiler's fixed rules), fast (the mapper's analytic
    # cost model picks split, tiles, loop order and buffering), search (the analytic model prunes and
    # the event simulation confirms the best few).  Fields a workload sets explicitly always win.
    mapper: str = "fast"
    # Summary detail only: simulate GEMMs of at least sampling.SAMPLE_MIN_INSTRUCTIONS instructions cut
    # down to a few waves and k-steps and extrapolate (collectors.simulator.sampling); False: every
    # instruction, as full detail does.
    sample: bool = True

    def with_overrides(self, **kw: Any) -> SimOptions:
        return replace(self, **kw)

    @classmethod
    def field_names(cls) -> set[str]:
        return {f.name for f in fields(cls)}


@dataclass(frozen=True)
class EngineInfo:
    core: int
    kind: str  # "matrix" | "vector" | "dma"
    queue: int  # DMA queue index (0 for compute engines)


class Machine:
    """Rates and capacities of the simulated device, and the engine numbering the program uses."""

    def __init__(self, spec: HardwareSpec, options: SimOptions | None = None) -> None:
        o = options or SimOptions()
        self.spec = spec
        self.options = o
        self.cores = int(o.cores or spec.cores)
        if self.cores < 1 or self.cores > spec.cores:
            raise SimulatorError(f"cores={self.cores}: {spec.name} has {spec.cores} core(s)")
        if o.mapper not in ("off", "fast", "search"):
            raise SimulatorError(f"mapper must be off, fast or search, got {o.mapper!r}")
        share = self.cores / spec.cores  # a subset of cores gets its share of the chip-wide figures
        tm = self.timing = spec.timing
        self.clock_hz = spec.clock_hz
        # Tile loads of a core: the spec's [timing] load path (a GPU SM's loads through L2) when it
        # gives one, else its [dma] engines (a DMA accelerator's descriptor queues).
        lq = tm.load_queues or spec.dma.engines
        self.dma_queues = int(o.dma_engines or lq)
        if self.dma_queues < 1:
            raise SimulatorError("dma_engines must be >= 1")
        lbw = tm.load_bandwidth / lq if tm.load_bandwidth > 0 else spec.dma.bandwidth
        self.dma_bw = float(o.dma_bandwidth or lbw)
        lat = tm.load_latency_ns if tm.load_latency_ns >= 0 else spec.dma.latency_ns
        self.dma_latency_ns = float(lat if o.dma_latency_ns is None else o.dma_latency_ns)
        # achievable DRAM bandwidth: the peak times the spec's dram_efficiency
        self.dram_bw = float(o.dram_bandwidth or spec.dram.bandwidth * share * tm.dram_efficiency)
        sram = spec.sram
        if o.sram_bytes is not None:
            self.sram_bytes = float(o.sram_bytes)
        elif tm.core_sram_bytes > 0:
            self.sram_bytes = tm.core_sram_bytes
        elif sram is not None:
            self.sram_bytes = sram.capacity / spec.cores
        else:
            raise SimulatorError(f"{spec.name} has no on-chip (sram) memory level; pass sram_bytes")
        if self.sram_bytes <= 0:
            raise SimulatorError("sram_bytes must be positive")
        if o.sram_bandwidth is not None:
            self.sram_bw = float(o.sram_bandwidth)
        elif tm.core_sram_bandwidth > 0:
            self.sram_bw = tm.core_sram_bandwidth
        else:
            self.sram_bw = (sram.bandwidth / spec.cores) if sram is not None else self.dram_bw * 8
        # the shared last-level cache cores reuse operands from (bytes; 0: every load reads DRAM)
        self.llc_bytes = spec.memory_level(tm.llc).capacity * share if tm.llc else 0.0
        if self.sram_bw <= 0:
            raise SimulatorError("sram_bandwidth must be positive")
        self._sram_ns_per_byte = 1e9 / self.sram_bw
        vec = spec.vector_flops or min(spec.peak_flops.values())
        self.vector_rate = vec / spec.cores * tm.vector_efficiency
        self.systolic = bool(o.systolic)
        sa = spec.systolic
        self.sa_rows = int(o.systolic_rows or (sa.rows if sa else 0))
        self.sa_cols = int(o.systolic_cols or (sa.cols if sa else 0))
        self.dataflow = str(o.dataflow or (sa.dataflow if sa else "os"))
        if self.systolic and (self.sa_rows < 1 or self.sa_cols < 1):
            raise SimulatorError(f"{spec.name} has no [systolic] section; set systolic_rows and systolic_cols")
        if self.dataflow not in ("os", "ws", "is"):
            raise SimulatorError(f"dataflow must be os, ws or is, got {self.dataflow!r}")
        self._tile_cache: dict[tuple[int, int, int, str], float] = {}
        self._rates: dict[str, float] = {}
        self.engines: list[EngineInfo] = []
        for c in range(self.cores):
            self.engines.append(EngineInfo(c, "matrix", 0))
            self.engines.append(EngineInfo(c, "vector", 0))
            for q in range(self.dma_queues):
                self.engines.append(EngineInfo(c, "dma", q))
        # Ops pay fixed costs when the spec gives any: the device's launch (on the "launch" engine,
        # before any core starts) and the host's dispatch (on the "host" engine, in parallel).
        self.fixed_costs = bool(tm.launch_ns or tm.host_ns)
        self.launch_engine = self.host_engine = -1
        if self.fixed_costs:
            # (listed with the last core: the trace numbers engines core by core)
            self.launch_engine = len(self.engines)
            self.engines.append(EngineInfo(self.cores - 1, "launch", 0))
            self.host_engine = len(self.engines)
            self.engines.append(EngineInfo(self.cores - 1, "host", 0))

    # ------------------------------------------------------------ numbering
    @property
    def per_core(self) -> int:
        return 2 + self.dma_queues

    def matrix(self, core: int) -> int:
        return core * self.per_core

    def vector(self, core: int) -> int:
        return core * self.per_core + 1

    def dma(self, core: int, queue: int) -> int:
        return core * self.per_core + 2 + queue % self.dma_queues

    # ---------------------------------------------------------------- rates
    def check_dtype(self, dtype: str) -> str:
        d = canonical_dtype(dtype)
        if not self.spec.supports(d):
            raise SimulatorError(
                f"dtype {dtype!r} is not supported by {self.spec.name}; it has {', '.join(sorted(self.spec.peak_flops))}"
            )
        return d

    def matrix_rate(self, dtype: str) -> float:
        """FLOP/s of one core's matrix engine for ``dtype``: its share of the peak times the spec's
        achievable fraction (``[timing] matmul_efficiency``)."""
        r = self._rates.get(dtype)
        if r is None:
            d = canonical_dtype(dtype)
            r = self._rates[dtype] = self.spec.peak(d) / self.spec.cores * self.timing.matmul(d)
        return r

    def array_utilization(self, m: int, n: int) -> float:
        """Fraction of the MAC array an m x n output tile keeps busy (1.0 without a systolic array).

        ``min(m, rows) / rows * min(n, cols) / cols``: output rows map onto array rows and output
        columns onto array columns, so a tile narrower than the array leaves the rest of it idle
        (a batch-1 GEMV, m = 1, uses one row of a 96 x 96 array: 1/96 of its peak).  Dimensions
        at least the array's size count as fully used; the partial last pass of a ragged
        dimension (e.g. 256 = 2 x 96 + 64) is taken to overlap the next tile's first pass.
        """
        rows, cols = self.sa_rows, self.sa_cols
        if rows < 1 or cols < 1:
            return 1.0
        return (m / rows if m < rows else 1.0) * (n / cols if n < cols else 1.0)

    def matmul_compute_ns(self, m: int, n: int, k: int, dtype: str) -> float:
        """Compute time of one m x n x k matmul tile, operand streaming aside."""
        if not self.systolic:
            return 2.0 * m * n * k / (self.matrix_rate(dtype) * self.array_utilization(m, n)) * 1e9
        key = (m, n, k, dtype)
        t = self._tile_cache.get(key)
        if t is None:
            from collectors.simulator.systolic import systolic_tile_cycles

            cycles = systolic_tile_cycles(m, n, k, self.sa_rows, self.sa_cols, self.dataflow)
            # The array does one MAC per PE per cycle at its native width; a dtype the spec gives a
            # lower peak for takes proportionally more passes.  The ratio is the spec's own array's
            # (its native rate over the dtype's peak), so an array resized by the options keeps it
            # rather than inheriting the spec's peak (a 128x128 array is not capped at a 96x96 one's).
            sa = self.spec.systolic
            rows, cols = (sa.rows, sa.cols) if sa else (self.sa_rows, self.sa_cols)
            native = 2.0 * rows * cols * self.clock_hz
            slow = max(1.0, native / self.matrix_rate(dtype))
            t = cycles * slow / self.clock_hz * 1e9
            self._tile_cache[key] = t
        return t

    def matmul_ns(self, m: int, n: int, k: int, dtype: str, sram_bytes: float) -> float:
        """Time of one m x n x k matmul tile on one core that moves ``sram_bytes`` to and from SRAM:
        the slower of its compute (:meth:`matmul_compute_ns`) and its operand streaming."""
        c = self.matmul_compute_ns(m, n, k, dtype)
        s = sram_bytes * self._sram_ns_per_byte
        return c if c >= s else s

    def vector_ns(self, flops: float, sram_bytes: float) -> float:
        """A vector op is bound by its FLOPs or by the SRAM traffic it makes, whichever is slower."""
        return max(flops / self.vector_rate * 1e9, sram_bytes * self._sram_ns_per_byte)

    @staticmethod
    def dtype_bytes(dtype: str) -> float:
        return float(DTYPE_BYTES[canonical_dtype(dtype)])

    def default_dtype(self) -> str:
        for d in ("bf16", "fp16", "int8", "fp8", "fp32"):
            if self.spec.supports(d):
                return d
        return next(iter(self.spec.peak_flops))
