"""SCALE-Sim v3 configuration: the ``.cfg`` file it reads, as a dataclass we can write and read.

SCALE-Sim parses the file with ``configparser`` and needs every key below (it has no defaults
for most).  Two quirks shape this module:

* in ``InterfaceBandwidth = USER`` mode SCALE-Sim feeds the IFMAP and filter SRAMs from DRAM at
  the ``[layout]`` section's ``IfmapSRAMBankBandwidth`` / ``FilterSRAMBankBandwidth`` words per
  cycle and drains the OFMAP SRAM at ``Bandwidth`` words per cycle; so :meth:`to_cfg` writes the
  one ``bandwidth`` we model into all three;
* SCALE-Sim's memory model is word-addressed with a word size hard-wired to 1 byte, and it has no
  clock.  The word size (for bytes and the dtype) and the clock (for cycles -> ns) live in an
  extra ``[accel_profiler]`` section, which SCALE-Sim ignores; both can be overridden per run.
"""

from __future__ import annotations

import configparser
from dataclasses import dataclass, replace
from pathlib import Path

from profiler.errors import TraceFormatError

#: SCALE-Sim's own (hard-wired) word size in bytes.
DEFAULT_WORD_SIZE = 1
#: Cycles -> ns when nothing says otherwise: 1 GHz, so one cycle is one nanosecond.
DEFAULT_CLOCK_GHZ = 1.0

WORD_SIZE_DTYPES = {1: "int8", 2: "fp16", 4: "fp32", 8: "fp64"}


@dataclass(frozen=True)
class ScaleSimConfig:
    """The architecture knobs of one SCALE-Sim run (sizes in KiB, bandwidth in words/cycle)."""

    rows: int = 16
    cols: int = 16
    dataflow: str = "os"
    ifmap_sram_kb: int = 64
    filter_sram_kb: int = 64
    ofmap_sram_kb: int = 32
    bandwidth: int = 10
    #: USER: the bandwidth above limits DRAM traffic (stalls possible); CALC: SCALE-Sim sizes it.
    interface_bandwidth: str = "USER"
    read_request_buffer: int = 32
    write_request_buffer: int = 32
    ifmap_offset: int = 0
    filter_offset: int = 10_000_000
    ofmap_offset: int = 20_000_000
    run_name: str = "scalesim_run"
    word_size: int = DEFAULT_WORD_SIZE
    clock_ghz: float = DEFAULT_CLOCK_GHZ

    def __post_init__(self) -> None:
        if self.dataflow not in ("os", "ws", "is"):
            raise ValueError(f"dataflow must be os, ws or is, not {self.dataflow!r}")
        if self.rows < 1 or self.cols < 1:
            raise ValueError(f"array must be at least 1x1, got {self.rows}x{self.cols}")
        if self.interface_bandwidth not in ("USER", "CALC"):
            raise ValueError(f"interface_bandwidth must be USER or CALC, not {self.interface_bandwidth!r}")
        if self.bandwidth < 1 or self.word_size < 1 or self.clock_ghz <= 0:
            raise ValueError("bandwidth, word_size and clock_ghz must be positive")
        if not self.run_name.replace("_", "").replace("-", "").isalnum():
            raise ValueError(f"run_name must be a plain name (it becomes a directory), not {self.run_name!r}")

    @property
    def array_name(self) -> str:
        return f"{self.rows}x{self.cols} {self.dataflow}"

    @property
    def dtype(self) -> str:
        return WORD_SIZE_DTYPES.get(self.word_size, f"{8 * self.word_size}bit")

    def with_(self, **changes: object) -> ScaleSimConfig:
        return replace(self, **changes)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ file
    def to_cfg(self) -> str:
        """The config file text SCALE-Sim 3.0 reads (plus our ``[accel_profiler]`` section)."""
        bw = self.bandwidth
        return f"""[general]
run_name = {self.run_name}

[architecture_presets]
ArrayHeight = {self.rows}
ArrayWidth = {self.cols}
ifmapsramszkB = {self.ifmap_sram_kb}
filtersramszkB = {self.filter_sram_kb}
ofmapsramszkB = {self.ofmap_sram_kb}
IfmapOffset = {self.ifmap_offset}
FilterOffset = {self.filter_offset}
OfmapOffset = {self.ofmap_offset}
Bandwidth = {bw}
Dataflow = {self.dataflow}
ReadRequestBuffer = {self.read_request_buffer}
WriteRequestBuffer = {self.write_request_buffer}

[layout]
IfmapCustomLayout = False
IfmapSRAMBankBandwidth = {bw}
IfmapSRAMBankNum = 1
IfmapSRAMBankPort = 2
FilterCustomLayout = False
FilterSRAMBankBandwidth = {bw}
FilterSRAMBankNum = 1
FilterSRAMBankPort = 2

[sparsity]
SparsitySupport = false
SparseRep = ellpack_block
OptimizedMapping = false
BlockSize = 8
RandomNumberGeneratorSeed = 40

[run_presets]
InterfaceBandwidth = {self.interface_bandwidth}
UseRamulatorTrace = False

[accel_profiler]
WordSizeBytes = {self.word_size}
ClockGHz = {self.clock_ghz}
"""

    def write(self, path: str | Path) -> Path:
        p = Path(path)
        p.write_text(self.to_cfg())
        return p

    @classmethod
    def read(cls, path: str | Path) -> ScaleSimConfig:
        """Parse a SCALE-Sim ``.cfg``; a missing or malformed key is a TraceFormatError naming it."""
        p = Path(path)
        cp = configparser.ConfigParser()
        try:
            with p.open() as f:
                cp.read_file(f)
        except (OSError, UnicodeDecodeError, configparser.Error) as exc:
            raise TraceFormatError(str(p), "not a readable SCALE-Sim config", str(exc).splitlines()[0]) from None

        def get(section: str, key: str, conv: type = str, default: object = None) -> object:
            if not cp.has_option(section, key):
                if default is not None:
                    return default
                raise TraceFormatError(str(p), "missing key in SCALE-Sim config", where=f"[{section}] {key}")
            raw = cp.get(section, key).strip()
            try:
                return conv(raw)
            except ValueError:
                raise TraceFormatError(str(p), f"bad value {raw!r}", where=f"[{section}] {key}") from None

        arch = "architecture_presets"
        bw_mode = str(get("run_presets", "InterfaceBandwidth", str, "USER")).upper()
        bw_text = str(get(arch, "Bandwidth", str, "10"))
        try:
            bandwidth = int(bw_text.split(",")[0])
            if cp.has_option("layout", "IfmapSRAMBankBandwidth"):
                # USER mode reads DRAM at the layout section's rate: that is what limits stalls.
                bandwidth = min(bandwidth, int(cp.get("layout", "IfmapSRAMBankBandwidth")))
        except ValueError:
            raise TraceFormatError(str(p), f"bad value {bw_text!r}", where=f"[{arch}] Bandwidth") from None
        try:
            return cls(
                rows=get(arch, "ArrayHeight", int),  # type: ignore[arg-type]
                cols=get(arch, "ArrayWidth", int),  # type: ignore[arg-type]
                dataflow=str(get(arch, "Dataflow")).strip().lower(),
                ifmap_sram_kb=get(arch, "ifmapsramszkB", int),  # type: ignore[arg-type]
                filter_sram_kb=get(arch, "filtersramszkB", int),  # type: ignore[arg-type]
                ofmap_sram_kb=get(arch, "ofmapsramszkB", int),  # type: ignore[arg-type]
                bandwidth=bandwidth,
                interface_bandwidth=bw_mode,
                read_request_buffer=get(arch, "ReadRequestBuffer", int, 32),  # type: ignore[arg-type]
                write_request_buffer=get(arch, "WriteRequestBuffer", int, 32),  # type: ignore[arg-type]
                ifmap_offset=get(arch, "IfmapOffset", int, 0),  # type: ignore[arg-type]
                filter_offset=get(arch, "FilterOffset", int, 10_000_000),  # type: ignore[arg-type]
                ofmap_offset=get(arch, "OfmapOffset", int, 20_000_000),  # type: ignore[arg-type]
                run_name=str(get("general", "run_name")).strip(),
                word_size=get("accel_profiler", "WordSizeBytes", int, DEFAULT_WORD_SIZE),  # type: ignore[arg-type]
                clock_ghz=get("accel_profiler", "ClockGHz", float, DEFAULT_CLOCK_GHZ),  # type: ignore[arg-type]
            )
        except ValueError as exc:
            raise TraceFormatError(str(p), "invalid SCALE-Sim config", str(exc)) from None
