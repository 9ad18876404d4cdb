"""Every Perfetto field number our writer and fast reader use is the official one, named once."""

from __future__ import annotations

import re
from pathlib import Path

from profiler.formats import perfetto_fields as pf

ROOT = Path(__file__).resolve().parents[1]


def test_field_numbers_match_the_official_protos() -> None:
    from perfetto.protos.perfetto.trace import perfetto_trace_pb2 as pb

    for (message, field), number in pf.OFFICIAL.items():
        assert getattr(pb, message).DESCRIPTOR.fields_by_name[field].number == number, (message, field)
    te = pb.TrackEvent.Type
    assert (te.TYPE_SLICE_BEGIN, te.TYPE_SLICE_END, te.TYPE_INSTANT, te.TYPE_COUNTER) == (
        pf.TYPE_SLICE_BEGIN, pf.TYPE_SLICE_END, pf.TYPE_INSTANT, pf.TYPE_COUNTER)
    sf = pb.TracePacket.SequenceFlags
    assert (sf.SEQ_INCREMENTAL_STATE_CLEARED, sf.SEQ_NEEDS_INCREMENTAL_STATE) == (
        pf.SEQ_INCREMENTAL_STATE_CLEARED, pf.SEQ_NEEDS_INCREMENTAL_STATE)


def test_no_raw_field_numbers_beside_named_ones() -> None:
    """The fast reader and the writer address fields only by name (``msg(11)`` was ``track_event``)."""
    for name in ("perfetto_fast.py", "perfetto_writer.py"):
        text = (ROOT / "profiler" / "formats" / name).read_text()
        raw = re.findall(r"\b(?:msg|value|off|length)\(\d+\)|_first_value\(\w+, \d+|\b(?:kind|wire) == \d\b", text)
        assert not raw, (name, raw)
        assert not re.search(r"^F_[A-Z_]+ *=", text, flags=re.M), f"{name} defines its own field numbers"
