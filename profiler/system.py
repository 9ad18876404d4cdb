"""How devices are wired: the ``[system]`` of a spec, and the links a transfer crosses.

Topologies (``topology``):

* ``switch``: every device has one full-duplex port into a switch (NVLink through NVSwitch): a
  transfer crosses the sender's uplink and the receiver's downlink, two hops;
* ``ring``: device i is wired to i-1 and i+1 (mod n), full duplex; a transfer takes the shorter way
  round;
* ``mesh2d`` / ``torus2d``: devices on a ``rows`` x ``cols`` grid (Dojo's tile mesh), wired to their
  4 neighbours (the torus wraps round); dimension-order routing, X first, then Y.

``link_bandwidth`` is bytes/s in each direction of one link (one port for ``switch``);
``link_latency_ns`` is the fixed cost per hop.  A transfer of B bytes over h hops whose most
loaded link carries k transfers at once lasts ``h * latency + B * k / bandwidth`` (cut-through:
the bytes stream through the hops; links shared by concurrent transfers divide their bandwidth).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any

from profiler.errors import SpecError

TOPOLOGIES = ("switch", "ring", "mesh2d", "torus2d")

#: A directed link: ("up"/"down", device) for switch ports, (a, b) between neighbours otherwise.
Link = tuple[Any, Any]


class TopologyError(SpecError):
    """A system description that cannot be (unknown topology, a grid that does not hold the devices)."""


@dataclass(frozen=True)
class SystemSpec:
    """Devices and their interconnect (see the module docstring)."""

    devices: int = 1
    topology: str = "switch"
    link_bandwidth: float = 0.0  # bytes/s per direction per link
    link_latency_ns: float = 0.0
    rows: int = 0  # mesh/torus shape; 0: as square as the device count allows
    cols: int = 0
    source: str = ""

    def __post_init__(self) -> None:
        if self.topology not in TOPOLOGIES:
            raise TopologyError(f"topology must be one of {', '.join(TOPOLOGIES)}, got {self.topology!r}")
        if self.devices < 1:
            raise TopologyError(f"devices must be at least 1, got {self.devices}")
        if self.devices > 1 and self.link_bandwidth <= 0:
            raise TopologyError("link_bandwidth must be positive for more than one device")
        if self.topology in ("mesh2d", "torus2d") and self.devices > 1:
            r, c = self.grid
            if r * c != self.devices:
                raise TopologyError(f"a {r}x{c} grid does not hold {self.devices} devices")

    @property
    def grid(self) -> tuple[int, int]:
        """(rows, cols) of a mesh or torus."""
        if self.rows and self.cols:
            return self.rows, self.cols
        if self.rows:
            return self.rows, math.ceil(self.devices / self.rows)
        r = int(math.isqrt(self.devices))
        while self.devices % r:
            r -= 1
        return r, self.devices // r

    def with_devices(self, n: int) -> SystemSpec:
        """The same wiring for ``n`` devices (a mesh keeps its row count when it divides n)."""
        from dataclasses import replace

        rows = self.rows if self.rows and n % self.rows == 0 else 0
        return replace(self, devices=n, rows=rows, cols=0)

    # -------------------------------------------------------------- routing
    def route(self, src: int, dst: int) -> list[Link]:
        """The directed links a transfer from ``src`` to ``dst`` crosses, in order."""
        return list(_route(self, src, dst))

    def _route(self, src: int, dst: int) -> list[Link]:
        if src == dst:
            return []
        if self.topology == "switch":
            return [("up", src), ("down", dst)]
        if self.topology == "ring":
            n = self.devices
            fwd = (dst - src) % n
            step = 1 if fwd <= n - fwd else -1
            out, cur = [], src
            while cur != dst:
                nxt = (cur + step) % n
                out.append((cur, nxt))
                cur = nxt
            return out
        rows, cols = self.grid
        wrap = self.topology == "torus2d"
        out = []
        cur = src
        for axis in (1, 0):  # X (columns) first, then Y (rows)
            while True:
                r, c = divmod(cur, cols)
                tr, tc = divmod(dst, cols)
                here, there, size = (c, tc, cols) if axis == 1 else (r, tr, rows)
                if here == there:
                    break
                d = there - here
                if wrap and abs(d) > size / 2:
                    d = -int(math.copysign(size - abs(d), d))
                nxt_here = (here + (1 if d > 0 else -1)) % size
                nxt = r * cols + nxt_here if axis == 1 else nxt_here * cols + c
                out.append((cur, nxt))
                cur = nxt
        return out

    def hops(self, src: int, dst: int) -> int:
        return len(_route(self, src, dst))

    def step_times(self, transfers: list[tuple[int, int, float]]) -> list[float]:
        """Duration (ns) of each (src, dst, bytes) transfer when all run at once (shared links)."""
        routes = [_route(self, s, d) for s, d, _ in transfers]
        load: dict[Link, int] = {}
        for r in routes:
            for link in r:
                load[link] = load.get(link, 0) + 1
        out = []
        for (_, _, nbytes), r in zip(transfers, routes, strict=True):
            if not r:
                out.append(0.0)
                continue
            k = max(load[link] for link in r)
            out.append(len(r) * self.link_latency_ns + nbytes * k / self.link_bandwidth * 1e9)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"devices": self.devices, "topology": self.topology, "link_bandwidth": self.link_bandwidth,
                "link_latency_ns": self.link_latency_ns, "rows": self.rows, "cols": self.cols, "source": self.source}


@functools.lru_cache(maxsize=65536)
def _route(system: SystemSpec, src: int, dst: int) -> tuple[Link, ...]:
    """Cached routes: collectives ask for the same pairs step after step."""
    return tuple(system._route(src, dst))


def system_from_dict(d: dict[str, Any], where: str = "[system]") -> SystemSpec:
    """A :class:`SystemSpec` from a ``[system]`` TOML table; errors name the key."""
    known = {"devices", "topology", "link_bandwidth", "link_latency_ns", "rows", "cols", "source"}
    extra = set(d) - known
    if extra:
        raise TopologyError(f"{where}: unknown key(s) {', '.join(sorted(extra))}")
    try:
        return SystemSpec(devices=int(d.get("devices", 1)), topology=str(d.get("topology", "switch")),
                          link_bandwidth=float(d.get("link_bandwidth", 0.0)),
                          link_latency_ns=float(d.get("link_latency_ns", 0.0)), rows=int(d.get("rows", 0)),
                          cols=int(d.get("cols", 0)), source=str(d.get("source", "")))
    except (TypeError, ValueError) as exc:
        raise TopologyError(f"{where}: {exc}") from None
