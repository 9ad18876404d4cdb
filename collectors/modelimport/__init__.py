"""Your model on the simulator: ONNX files and ``torch.export`` programs as workloads.

    from collectors.modelimport import load_model
    model = load_model("encoder.onnx")          # or "encoder.pt2" (torch.export.save)
    simulate(model, load_spec("edge-npu")).trace   # slices named after the model's nodes
    model.unmodeled                               # nodes simulated as plain memory traffic
"""

from __future__ import annotations

from pathlib import Path

from collectors.modelimport.graph import GraphOp, ImportedModel, build, lower
from collectors.modelimport.onnx_import import ModelImportError, load_onnx
from collectors.modelimport.torch_import import from_exported, load_exported

MODEL_SUFFIXES = (".onnx", ".pt2")


def is_model_path(name: str) -> bool:
    return name.lower().endswith(MODEL_SUFFIXES) and Path(name).is_file()


def load_model(path: str | Path) -> ImportedModel:
    """An ONNX (``.onnx``) or ``torch.export`` (``.pt2``) file as a simulator workload."""
    p = str(path)
    if p.lower().endswith(".pt2"):
        return load_exported(p)
    return load_onnx(p)


__all__ = ["MODEL_SUFFIXES", "GraphOp", "ImportedModel", "ModelImportError", "build", "from_exported",
           "is_model_path", "load_exported", "load_model", "load_onnx", "lower"]
