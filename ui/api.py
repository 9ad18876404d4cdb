"""JSON endpoints of the canvas timeline: rows, views of a window and a row range, search, and one
slice's metrics for the hover (asked on hover, so a zoom's answer stays as small as it was).

Read-only GETs on traces already loaded, by key; every parameter is a number, a short list of
numbers or a bounded string, and anything else is answered 400 (never a traceback).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ui import viewdata as vd
from ui.state import LoadedTrace, Registry

MAX_WIDTH_PX = 8000
MAX_COLLAPSED = 5000


class BadRequest(ValueError):
    """A query parameter that is not what the endpoint takes."""


def _int(args: Any, name: str, default: int | None = None, lo: int = -(2**62), hi: int = 2**62) -> int:
    raw = args.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(f"{name} is required")
        return default
    try:
        v = int(float(raw))
    except (TypeError, ValueError, OverflowError):
        raise BadRequest(f"{name} must be a number") from None
    return min(max(v, lo), hi)


def collapsed_of(args: Any) -> set[int]:
    raw = args.get("c") or ""
    parts = [p for p in raw.split(",") if p]
    if len(parts) > MAX_COLLAPSED or not all(p.isdigit() for p in parts):
        raise BadRequest("c must be a comma-separated list of group ids")
    return {int(p) for p in parts}


def rows_answer(lt: LoadedTrace, collapsed: set[int]) -> dict[str, Any]:
    rows = vd.rows_for(lt, collapsed)
    s, e = lt.index.span
    return {"key": lt.key, "label": lt.label, "origin": str(s), "span": e - s, "rows": vd.row_meta(lt, rows),
            "groups": vd.groups(lt), "cats": [k or "" for k in lt.columns["cats"]]}


def view_answer(lt: LoadedTrace, args: Any) -> dict[str, Any]:
    s, e = lt.index.span
    o = lt.origin
    t0 = o + _int(args, "t0", 0)
    t1 = o + _int(args, "t1", e - s)
    t1 = max(t1, t0 + 1)
    w = _int(args, "w", 1200, 10, MAX_WIDTH_PX)
    rows = vd.rows_for(lt, collapsed_of(args))
    r0 = _int(args, "r0", 0, 0, len(rows))
    r1 = _int(args, "r1", len(rows), 0, len(rows))
    error = None
    try:
        match = vd.name_matcher(lt, args.get("q"), args.get("re") == "1")
    except ValueError as exc:  # the view is still drawn, without highlights, and says why
        match, error = None, str(exc)
    out = vd.view_payload(lt, rows, t0, t1, w, r0, r1, match)
    out["error"] = error
    return out


def search_answer(lt: LoadedTrace, args: Any) -> dict[str, Any]:
    """The next (``dir=1``) or previous (``dir=-1``) match starting after/before ``from`` (ns from the
    trace start), wrapping around, and how many slices match in all."""
    try:
        mask = vd.name_matcher(lt, args.get("q"), args.get("re") == "1")
    except ValueError as exc:
        raise BadRequest(str(exc)) from None
    if mask is None:
        return {"count": 0}
    ids = vd.matches(lt, mask)
    if not ids.size:
        return {"count": 0}
    ix = lt.index
    start = ix.ts[ids] - lt.origin
    frm = _int(args, "from", -1)
    if _int(args, "dir", 1) >= 0:
        k = int(np.searchsorted(start, frm, "right"))
        k = k if k < ids.size else 0
    else:
        k = int(np.searchsorted(start, frm, "left")) - 1
        k = k if k >= 0 else ids.size - 1
    sid = int(ids[k])
    return {"count": int(ids.size), "index": k, "id": sid, "ts": int(ix.ts[sid] - lt.origin), "dur": int(ix.dur[sid]),
            "track": int(ix.track[sid])}


def slice_answer(lt: LoadedTrace, args: Any) -> dict[str, Any]:
    """What the hover adds to a slice's name and duration: flops, bytes, AI ("–" where missing)."""
    sid = _int(args, "id")
    if not 0 <= sid < lt.index.n:
        raise BadRequest("id is not a slice of this trace")
    return {"id": sid, **vd.slice_metrics(lt, sid)}


def register_api(server: Any, reg: Registry) -> None:
    """Add ``/api/rows/<key>``, ``/api/view/<key>``, ``/api/search/<key>`` and ``/api/slice/<key>`` to
    the Flask server."""
    from flask import abort, jsonify, request

    def answer(key: int, fn: Any) -> Any:
        lt = reg.get(key)
        if lt is None:
            abort(404)
        try:
            body = fn(lt)
        except BadRequest as exc:
            return (str(exc), 400, {"Content-Type": "text/plain; charset=utf-8"})
        resp = jsonify(body)
        resp.headers["Cache-Control"] = "no-store"
        return resp

    @server.route("/api/rows/<int:key>")
    def _rows(key: int) -> Any:
        return answer(key, lambda lt: rows_answer(lt, collapsed_of(request.args)))

    @server.route("/api/view/<int:key>")
    def _view(key: int) -> Any:
        return answer(key, lambda lt: view_answer(lt, request.args))

    @server.route("/api/search/<int:key>")
    def _search(key: int) -> Any:
        return answer(key, lambda lt: search_answer(lt, request.args))

    @server.route("/api/slice/<int:key>")
    def _slice(key: int) -> Any:
        return answer(key, lambda lt: slice_answer(lt, request.args))
