"""Which slices are waiting time by their label: one rule for the analyzers and the dashboard.

A stall slice (a simulator's "stall: wait load A", SCALE-Sim's "stall: memory", a category
"wait") is time an engine spent not working; the analyzers exclude it from busy time and the
timeline bins it apart.  Words, not substrings: "install_weights" is not a stall.
"""

from __future__ import annotations

import re

#: Categories that mark a slice as waiting time.
STALL_CATEGORIES = frozenset({"stall", "wait", "idle"})
_STALL_NAME = re.compile(r"^\s*(?:stall|wait|idle)\b(?!_)", re.I)


def is_stall_category(category: str | None) -> bool:
    return category is not None and category.strip().lower() in STALL_CATEGORIES


def is_stall_name(name: str | None) -> bool:
    """A name that starts with the word stall, wait or idle ("stall: memory", "wait", "Idle")."""
    return bool(name) and _STALL_NAME.match(name or "") is not None


def is_stall_label(category: str | None, name: str | None) -> bool:
    return is_stall_category(category) or is_stall_name(name)
