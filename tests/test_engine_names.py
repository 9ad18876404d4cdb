"""One rule says which engine names are copy (DMA) engines, for the SDK and the analyzers alike."""

from __future__ import annotations

import pytest

from analysis.roles import infer_roles
from collectors.runtime._flush import engine_kind
from profiler import TraceBuilder
from profiler.engine_names import is_dma_engine_name

DMA = ["dma", "dma0", "sdma1", "copy", "copy_in", "memcpy", "h2d", "d2h", "d2d", "xfer0", "transfer", "npu0 dma 2",
       "Copy Engine 1", "queue d2h"]
COMPUTE = ["mxu", "vector", "tensor core 0", "matrix", "core 0", "stream 7", "npu"]


@pytest.mark.parametrize("name", DMA + COMPUTE)
def test_sdk_and_analysis_agree_on_an_engine_name(name: str) -> None:
    """The SDK's track kind for ``engine=name`` is the role the analyzers infer for a foreign
    track of that name (kind "other", as a Chrome JSON thread arrives)."""
    want = "dma" if name in DMA else "compute"
    assert is_dma_engine_name(name) is (name in DMA)
    assert engine_kind(name) == want
    b = TraceBuilder()
    dev = b.add_track("npu0", kind="group", device="npu0")
    t = b.add_track(name, kind="other", parent=dev, attrs={"engine": name})
    b.add_slice(t, 0, 10, "op")
    assert infer_roles(b.build())[t] == want
