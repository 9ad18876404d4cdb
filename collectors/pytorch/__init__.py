"""PyTorch collector: torch.profiler runs imported into the trace model, with FLOPs and bytes.

``result, trace = profile(fn, *args, **kwargs)`` runs ``fn`` under torch.profiler with
``record_shapes=True, with_flops=True``, exports the Kineto JSON, imports it with the Kineto
reader and fills FLOPs/bytes from shapes (:mod:`collectors.pytorch.flops`).  ``record`` also
returns torch's profiler object; ``read_profile_json`` imports a JSON written elsewhere (CPU or
GPU: kernels, copies, runtime calls and their flows are kept).
"""

from collectors.pytorch.collect import Recording, profile, read_profile_json, record
from collectors.pytorch.enrich import enrich

__all__ = ["Recording", "enrich", "profile", "read_profile_json", "record"]
