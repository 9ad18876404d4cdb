"""accel-profiler core: the Arrow trace model, hardware specs, trace formats and the CLI.

Data flows one way: ``collectors`` -> ``profiler`` -> ``analysis`` -> ``ui``/CLI.  Nothing in
this package's core modules imports the packages around it; only the CLI verbs (the top of the
flow) import them, lazily, when a verb that needs them runs.
"""

from profiler.builder import TraceBuilder
from profiler.errors import ProfilerError, SpecError, TraceFormatError
from profiler.formats import detect_format, read_trace, write_trace
from profiler.model import ImportStats, Trace, TraceMetadata

__version__ = "0.1.0"

__all__ = [
    "ImportStats",
    "ProfilerError",
    "SpecError",
    "Trace",
    "TraceBuilder",
    "TraceFormatError",
    "TraceMetadata",
    "detect_format",
    "read_trace",
    "write_trace",
]
