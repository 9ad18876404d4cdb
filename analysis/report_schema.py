"""JSON Schema of ``profiler analyze --format json`` output, and a small validator for it.

The schema is the contract for CI scripts that read the report; ``analysis/schema.md`` explains
each field.  The validator covers the JSON Schema subset the schema uses (type, required,
properties, items, enum, additionalProperties as a schema) so the check needs no extra package.
"""

from __future__ import annotations

from typing import Any

_NUM = {"type": ["number", "null"]}
_FINDING = {
    "type": "object",
    "required": ["id", "kind", "severity", "title", "track", "track_name", "start_ns", "end_ns", "metric", "value",
                 "threshold", "unit", "gain_ns", "suggestion", "subject", "details"],
    "properties": {
        "id": {"type": "string"}, "kind": {"type": "string"},
        "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
        "title": {"type": "string"}, "track": {"type": ["integer", "null"]}, "track_name": {"type": ["string", "null"]},
        "start_ns": {"type": "integer"}, "end_ns": {"type": "integer"}, "metric": {"type": "string"},
        "value": _NUM, "threshold": _NUM, "unit": {"type": "string"}, "gain_ns": {"type": "integer"},
        "suggestion": {"type": "string"}, "subject": {"type": "string"}, "details": {"type": "object"},
    },
}
_BUDGET = {
    "type": "object",
    "required": ["name", "passed", "value", "limit", "message"],
    "properties": {"name": {"type": "string"}, "passed": {"type": "boolean"},
                   "value": {"type": ["number", "string", "null"]}, "limit": {"type": ["number", "string"]},
                   "message": {"type": "string"}},
}
REPORT_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "accel-profiler analysis report",
    "type": "object",
    "required": ["schema", "version", "trace", "hardware", "summary", "findings", "analyzers", "budgets", "passed"],
    "properties": {
        "schema": {"enum": ["accel-profiler/analysis-report"]},
        "version": {"enum": [1]},
        "trace": {"type": "object"},
        "hardware": {"type": ["string", "null"]},
        "summary": {
            "type": "object",
            "required": ["total_ns", "start_ns", "end_ns", "mfu", "hfu", "mbu", "compute_active_ns", "stall_pct",
                         "dma_bubble_pct", "idle_pct", "findings", "findings_by_severity", "max_severity",
                         "top_bottlenecks"],
            "properties": {
                "total_ns": {"type": "integer"}, "start_ns": {"type": "integer"}, "end_ns": {"type": "integer"},
                "mfu": _NUM, "hfu": _NUM, "mbu": _NUM, "compute_active_ns": {"type": ["integer", "null"]},
                "stall_pct": _NUM, "dma_bubble_pct": _NUM, "idle_pct": _NUM, "findings": {"type": "integer"},
                "findings_by_severity": {"type": "object", "additionalProperties": {"type": "integer"}},
                "max_severity": {"enum": ["info", "low", "medium", "high", "critical", None]},
                "top_bottlenecks": {"type": "array", "items": {
                    "type": "object", "required": ["id", "kind", "severity", "title", "gain_ns"]}},
            },
        },
        "findings": {"type": "array", "items": _FINDING},
        "analyzers": {"type": "object", "additionalProperties": {
            "type": "object", "required": ["summary", "metrics"],
            "properties": {"summary": {"type": "object"}, "metrics": {"type": "array", "items": {"type": "object"}}},
        }},
        "budgets": {"type": "array", "items": _BUDGET},
        "passed": {"type": "boolean"},
    },
}

_TYPES: dict[str, Any] = {
    "object": dict, "array": list, "string": str, "boolean": bool, "null": type(None),
}


def _is(value: Any, t: str) -> bool:
    if t == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if t == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    return isinstance(value, _TYPES[t])


def validate(doc: Any, schema: dict[str, Any] | None = None, path: str = "$") -> list[str]:
    """Errors of ``doc`` against ``schema`` (the report schema by default); empty when valid."""
    s = REPORT_SCHEMA if schema is None else schema
    errs: list[str] = []
    if "enum" in s and doc not in s["enum"]:
        errs.append(f"{path}: {doc!r} not in {s['enum']}")
    if "type" in s:
        types = s["type"] if isinstance(s["type"], list) else [s["type"]]
        if not any(_is(doc, t) for t in types):
            return [*errs, f"{path}: expected {'/'.join(types)}, got {type(doc).__name__}"]
    if isinstance(doc, dict):
        for k in s.get("required", []):
            if k not in doc:
                errs.append(f"{path}: missing {k!r}")
        props = s.get("properties", {})
        for k, v in doc.items():
            if k in props:
                errs += validate(v, props[k], f"{path}.{k}")
            elif isinstance(s.get("additionalProperties"), dict):
                errs += validate(v, s["additionalProperties"], f"{path}.{k}")
    if isinstance(doc, list) and "items" in s:
        for i, v in enumerate(doc):
            errs += validate(v, s["items"], f"{path}[{i}]")
    return errs
