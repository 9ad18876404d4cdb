"""Collectors: produce traces from runtimes (SDK, PyTorch, ONNX Runtime) and simulators."""
