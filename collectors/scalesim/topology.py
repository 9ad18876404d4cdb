"""SCALE-Sim topologies: GEMM layers ("Layer, M, N, K") and convolution layers, as CSV and back.

SCALE-Sim's CSV readers drop the last comma-separated field of every row (``row.split(',')[:-1]``),
so each row must end with a comma; :func:`write_topology` always writes it.  A GEMM run also needs
a layout CSV even when custom layouts are off: a header-only file is enough.

Every layer knows its GEMM equivalent (SCALE-Sim lowers a convolution to
``M = output pixels``, ``N = filters``, ``K = filter window x channels``), which gives FLOPs and
lets the systolic timing model and the simulator run the same work.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from profiler.errors import TraceFormatError

_NAME_OK = re.compile(r"^[A-Za-z0-9_.\-]+$")


@dataclass(frozen=True)
class GemmLayer:
    """``C[M, N] = A[M, K] @ B[K, N]``."""

    name: str
    m: int
    n: int
    k: int

    @property
    def gemm(self) -> tuple[int, int, int]:
        return (self.m, self.n, self.k)

    @property
    def macs(self) -> int:
        return self.m * self.n * self.k

    def csv_row(self) -> str:
        return f"{self.name}, {self.m}, {self.n}, {self.k},"


@dataclass(frozen=True)
class ConvLayer:
    """A 2-D convolution as SCALE-Sim describes it (one stride for both directions)."""

    name: str
    ifmap_h: int
    ifmap_w: int
    filter_h: int
    filter_w: int
    channels: int
    num_filters: int
    stride: int = 1

    @property
    def ofmap_hw(self) -> tuple[int, int]:
        # SCALE-Sim's formula (topology_utils.topo_calc_hyperparams): no padding.
        s = self.stride
        return (math.ceil((self.ifmap_h - self.filter_h + s) / s), math.ceil((self.ifmap_w - self.filter_w + s) / s))

    @property
    def gemm(self) -> tuple[int, int, int]:
        oh, ow = self.ofmap_hw
        return (oh * ow, self.num_filters, self.filter_h * self.filter_w * self.channels)

    @property
    def macs(self) -> int:
        m, n, k = self.gemm
        return m * n * k

    def csv_row(self) -> str:
        return (f"{self.name}, {self.ifmap_h}, {self.ifmap_w}, {self.filter_h}, {self.filter_w}, "
                f"{self.channels}, {self.num_filters}, {self.stride},")


Layer = GemmLayer | ConvLayer

GEMM_HEADER = "Layer, M, N, K,"
CONV_HEADER = "Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width, Channels, Num Filter, Strides,"
LAYOUT_HEADER = "Layer name, IFMAP Height Intraline Factor,"


def topology_kind(layers: Sequence[Layer]) -> str:
    """"gemm" or "conv": SCALE-Sim runs one kind per topology file."""
    if not layers:
        raise ValueError("a topology needs at least one layer")
    kinds = {"gemm" if isinstance(x, GemmLayer) else "conv" for x in layers}
    if len(kinds) > 1:
        raise ValueError("SCALE-Sim runs GEMM and convolution layers from separate topologies; do not mix them")
    return kinds.pop()


def _check(layer: Layer) -> None:
    if not _NAME_OK.match(layer.name):
        raise ValueError(f"layer name {layer.name!r}: use letters, digits, '_', '-', '.' (SCALE-Sim splits on commas)")
    dims = layer.gemm
    if min(dims) < 1:
        raise ValueError(f"layer {layer.name}: every dimension must be positive, got GEMM {dims}")
    if isinstance(layer, ConvLayer) and (layer.filter_h > layer.ifmap_h or layer.filter_w > layer.ifmap_w):
        raise ValueError(f"layer {layer.name}: filter larger than the input")


def write_topology(layers: Sequence[Layer], path: str | Path) -> tuple[Path, str]:
    """Write a topology CSV; returns (path, kind)."""
    kind = topology_kind(layers)
    for layer in layers:
        _check(layer)
    header = GEMM_HEADER if kind == "gemm" else CONV_HEADER
    p = Path(path)
    p.write_text("\n".join([header, *(x.csv_row() for x in layers)]) + "\n")
    return p, kind


def write_layout(path: str | Path) -> Path:
    """The header-only layout CSV SCALE-Sim insists on opening when custom layouts are off."""
    p = Path(path)
    p.write_text(LAYOUT_HEADER + "\n")
    return p


def gemm_layers(shapes: Iterable[tuple[int, int, int]], prefix: str = "gemm") -> list[GemmLayer]:
    """Name a list of (M, N, K) shapes ``gemm0, gemm1, ...``."""
    return [GemmLayer(f"{prefix}{i}", int(m), int(n), int(k)) for i, (m, n, k) in enumerate(shapes)]


def parse_gemm_shapes(text: str) -> list[GemmLayer]:
    """``"64x64x64,128x32x256"`` (M x N x K, comma-separated) -> GEMM layers."""
    out = []
    for i, part in enumerate(p for p in text.replace(";", ",").split(",") if p.strip()):
        dims = [d.strip() for d in part.lower().split("x")]
        if len(dims) != 3 or not all(d.isdigit() for d in dims):
            raise ValueError(f"GEMM shape {part.strip()!r} is not MxNxK (e.g. 64x128x256)")
        out.append(GemmLayer(f"gemm{i}", int(dims[0]), int(dims[1]), int(dims[2])))
    if not out:
        raise ValueError("no GEMM shapes given")
    return out


def read_topology(path: str | Path) -> list[Layer]:
    """Read a SCALE-Sim topology CSV (GEMM or conv, told apart by the header or field count)."""
    p = Path(path)
    try:
        lines = p.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise TraceFormatError(str(p), "not a readable topology CSV", str(exc)) from None
    if not lines:
        raise TraceFormatError(str(p), "empty topology file")
    header = [h.strip().lower() for h in lines[0].split(",") if h.strip()]
    is_gemm = header[1:4] == ["m", "n", "k"]
    layers: list[Layer] = []
    for lineno, raw in enumerate(lines[1:], start=2):
        row = raw.strip()
        if not row:
            continue
        fields = [f.strip() for f in row.split(",")]
        if fields and fields[-1] == "":
            fields = fields[:-1]
        try:
            nums = [int(f) for f in fields[1:] if ":" not in f]  # a trailing "N:M" is a sparsity ratio
            if is_gemm or (len(nums) == 3 and len(header) < 7):
                layers.append(GemmLayer(fields[0], *nums[:3]))
            else:
                if len(nums) < 7:
                    raise ValueError(f"expected 7 numbers, got {len(nums)}")
                layers.append(ConvLayer(fields[0], *nums[:7]))
        except (ValueError, TypeError, IndexError) as exc:
            raise TraceFormatError(str(p), "bad topology row", str(exc), where=f"line {lineno}") from None
    if not layers:
        raise TraceFormatError(str(p), "no layers in topology")
    return layers
