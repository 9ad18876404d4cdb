"""Timeline rows from the track tree: device -> core -> engine/queue, with collapsible groups.

Rows follow the tree depth-first in ``sort_index`` order, counters last among their siblings so
their small area charts sit under the engines of their group.  A collapsed group becomes one row
holding all its descendant slice tracks (the LOD shows their mean busy fraction).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from profiler.model import Trace
from ui.lod import ViewRow


@dataclass
class Row:
    """A timeline row: what it shows (``view``), its label, indentation and role."""

    label: str
    kind: str  # "group" (header), "collapsed", "slices" or "counter"
    track: int  # the track this row is for (the group's id for headers and collapsed groups)
    level: int
    device: str | None
    view: ViewRow = field(default_factory=lambda: ViewRow([]))
    max_depth: int = 0  # nesting levels - 1 on this row


@dataclass
class TrackTree:
    """Parent/child structure of a trace's tracks."""

    names: dict[int, str]
    kinds: dict[int, str]
    devices: dict[int, str | None]
    children: dict[int | None, list[int]]
    units: dict[int, str] = field(default_factory=dict)

    @classmethod
    def of(cls, trace: Trace) -> TrackTree:
        """The tree of ``trace``'s tracks.  A track of any kind (``memory``, ``bandwidth``, ...) that
        holds counter samples and no slices is a counter row: SRAM occupancy is a counter even
        though its track kind says ``memory``."""
        import json

        import numpy as np

        rows = trace.tracks.to_pylist()
        with_counters = set(np.unique(trace.counters["track"].to_numpy()).tolist()) if trace.counters.num_rows else set()
        with_slices = set(np.unique(trace.slices["track"].to_numpy()).tolist()) if trace.slices.num_rows else set()
        kinds = {}
        units: dict[int, str] = {}
        for r in rows:
            counter_like = r["id"] in with_counters and r["id"] not in with_slices
            kinds[r["id"]] = "counter" if counter_like else r["kind"]
            try:
                attrs = json.loads(r.get("attrs") or "{}")
            except ValueError:
                attrs = {}
            unit = attrs.get("unit") if isinstance(attrs, dict) else None
            if isinstance(unit, str):
                units[r["id"]] = unit
        children: dict[int | None, list[int]] = {}
        for r in sorted(rows, key=lambda r: (kinds[r["id"]] == "counter", r["sort_index"], r["id"])):
            children.setdefault(r["parent"], []).append(r["id"])
        return cls({r["id"]: r["name"] for r in rows}, kinds, {r["id"]: r["device"] for r in rows}, children, units)

    def groups(self) -> list[int]:
        """Tracks that have children, in display order."""
        return [t for t in self._walk(None) if self.children.get(t)]

    def _walk(self, parent: int | None) -> list[int]:
        out: list[int] = []
        for t in self.children.get(parent, []):
            out.append(t)
            out += self._walk(t)
        return out

    def descendants(self, track: int) -> list[int]:
        return self._walk(track)

    def rows(self, collapsed: set[int] | frozenset[int] = frozenset(), max_depth: dict[int, int] | None = None) -> list[Row]:
        """Display rows, skipping the insides of ``collapsed`` groups."""
        md = max_depth or {}
        out: list[Row] = []

        def visit(t: int, level: int) -> None:
            kind = self.kinds[t]
            kids = self.children.get(t, [])
            if kids:
                if t in collapsed:
                    inner = [d for d in self.descendants(t) if self.kinds[d] != "counter" and not self.children.get(d)]
                    out.append(Row(f"▸ {self.names[t]}", "collapsed", t, level, self.devices[t], ViewRow(inner)))
                    return
                own = [t] if kind != "group" else []
                out.append(Row(f"▾ {self.names[t]}", "group", t, level, self.devices[t], ViewRow(own), md.get(t, 0)))
                for k in kids:
                    visit(k, level + 1)
                return
            if kind == "counter":
                out.append(Row(self.names[t], "counter", t, level, self.devices[t], ViewRow([], counter_track=t)))
            elif kind != "group":
                out.append(Row(self.names[t], "slices", t, level, self.devices[t], ViewRow([t]), md.get(t, 0)))

        for root in self.children.get(None, []):
            visit(root, 0)
        return out
