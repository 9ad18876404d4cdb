"""Perfetto protobuf field numbers and enum values our writer emits and the fast reader decodes.

One place, named after the official protos (perfetto/trace/trace_packet.proto, track_event.proto,
debug_annotation.proto), so the writer and the column-wise reader cannot disagree and no raw
number stands beside a named one.  ``tests/test_perfetto_fields.py`` checks every number against
the official descriptors shipped with the ``perfetto`` package.
"""

from __future__ import annotations

# Trace
F_TRACE_PACKET = 1  # Trace.packet

# TracePacket
F_PKT_CHROME_EVENTS = 5  # chrome_events
F_PKT_TIMESTAMP = 8  # timestamp
F_PKT_SEQ_ID = 10  # trusted_packet_sequence_id
F_PKT_TRACK_EVENT = 11  # track_event
F_PKT_INTERNED_DATA = 12  # interned_data
F_PKT_SEQ_FLAGS = 13  # sequence_flags
F_PKT_INCREMENTAL_STATE_CLEARED = 41  # incremental_state_cleared
F_PKT_TRACK_DESCRIPTOR = 60  # track_descriptor
F_PKT_FIRST_PACKET_ON_SEQUENCE = 87  # first_packet_on_sequence

# TrackEvent
F_TE_CATEGORY_IIDS = 3  # category_iids
F_TE_DEBUG_ANNOTATIONS = 4  # debug_annotations
F_TE_TYPE = 9  # type
F_TE_NAME_IID = 10  # name_iid
F_TE_TRACK_UUID = 11  # track_uuid
F_TE_DOUBLE_COUNTER = 44  # double_counter_value
F_TE_FLOW_IDS = 47  # flow_ids
F_TE_TERMINATING_FLOW_IDS = 48  # terminating_flow_ids

# DebugAnnotation
F_DA_NAME_IID = 1  # name_iid
F_DA_DOUBLE = 5  # double_value
F_DA_JSON = 9  # legacy_json_value
F_DA_STRING_IID = 17  # string_value_iid

# TrackEvent.Type
TYPE_SLICE_BEGIN, TYPE_SLICE_END, TYPE_INSTANT, TYPE_COUNTER = 1, 2, 3, 4
# TracePacket.SequenceFlags
SEQ_INCREMENTAL_STATE_CLEARED, SEQ_NEEDS_INCREMENTAL_STATE = 1, 2

#: Our interned debug-annotation names (iids in the writer's interned_data), not a Perfetto enum.
ANN_FLOPS, ANN_BYTES, ANN_DTYPE, ANN_ARGS = 1, 2, 3, 4

#: (message, field name) -> number, for the check against the official descriptors.
OFFICIAL = {
    ("Trace", "packet"): F_TRACE_PACKET,
    ("TracePacket", "chrome_events"): F_PKT_CHROME_EVENTS,
    ("TracePacket", "timestamp"): F_PKT_TIMESTAMP,
    ("TracePacket", "trusted_packet_sequence_id"): F_PKT_SEQ_ID,
    ("TracePacket", "track_event"): F_PKT_TRACK_EVENT,
    ("TracePacket", "interned_data"): F_PKT_INTERNED_DATA,
    ("TracePacket", "sequence_flags"): F_PKT_SEQ_FLAGS,
    ("TracePacket", "incremental_state_cleared"): F_PKT_INCREMENTAL_STATE_CLEARED,
    ("TracePacket", "track_descriptor"): F_PKT_TRACK_DESCRIPTOR,
    ("TracePacket", "first_packet_on_sequence"): F_PKT_FIRST_PACKET_ON_SEQUENCE,
    ("TrackEvent", "category_iids"): F_TE_CATEGORY_IIDS,
    ("TrackEvent", "debug_annotations"): F_TE_DEBUG_ANNOTATIONS,
    ("TrackEvent", "type"): F_TE_TYPE,
    ("TrackEvent", "name_iid"): F_TE_NAME_IID,
    ("TrackEvent", "track_uuid"): F_TE_TRACK_UUID,
    ("TrackEvent", "double_counter_value"): F_TE_DOUBLE_COUNTER,
    ("TrackEvent", "flow_ids"): F_TE_FLOW_IDS,
    ("TrackEvent", "terminating_flow_ids"): F_TE_TERMINATING_FLOW_IDS,
    ("DebugAnnotation", "name_iid"): F_DA_NAME_IID,
    ("DebugAnnotation", "double_value"): F_DA_DOUBLE,
    ("DebugAnnotation", "legacy_json_value"): F_DA_JSON,
    ("DebugAnnotation", "string_value_iid"): F_DA_STRING_IID,
}
