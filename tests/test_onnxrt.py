"""ONNX Runtime collector on real ORT runs of small models built with onnx.helper."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from collectors.onnxrt import profile, read_ort_profile
from profiler.errors import TraceFormatError

RNG = np.random.default_rng(0)


def _init(name: str, shape: tuple[int, ...]) -> onnx.TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def cnn_encoder() -> onnx.ModelProto:
    """x[2,3,16,16] -> Conv 3->8 k3 -> Relu -> grouped Conv 8->8 g2 k3 -> MaxPool 2 -> Flatten -> Gemm -> 10."""
    nodes = [
        helper.make_node("Conv", ["x", "w1", "b1"], ["c1"], name="conv1", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu1"),
        helper.make_node("Conv", ["r1", "w2"], ["c2"], name="conv2_grouped", group=2, pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c2"], ["r2"], name="relu2"),
        helper.make_node("MaxPool", ["r2"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "wg", "bg"], ["y"], name="fc", transB=1),
    ]
    g = helper.make_graph(
        nodes, "cnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3, 16, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 10])],
        [_init("w1", (8, 3, 3, 3)), _init("b1", (8,)), _init("w2", (8, 4, 3, 3)), _init("wg", (10, 512)),
         _init("bg", (10,))],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def mlp() -> onnx.ModelProto:
    """x[4,32] -> MatMul 32x64 -> Add -> Relu -> MatMul 64x16 -> Add."""
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h1"], name="mm1"),
        helper.make_node("Add", ["h1", "b1"], ["a1"], name="add1"),
        helper.make_node("Relu", ["a1"], ["r1"], name="act"),
        helper.make_node("MatMul", ["r1", "w2"], ["h2"], name="mm2"),
        helper.make_node("Add", ["h2", "b2"], ["y"], name="add2"),
    ]
    g = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [_init("w1", (32, 64)), _init("b1", (64,)), _init("w2", (64, 16)), _init("b2", (16,))],
    )
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])


def _node_slices(trace):
    df = trace.slices_df()
    return df[df["track_kind"] == "compute"].copy()


@pytest.fixture(scope="module")
def cnn_trace():
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    return profile(cnn_encoder(), {"x": x}, runs=3, optimize=False)


def test_nodes_match_the_graph_and_each_run(cnn_trace) -> None:
    model = cnn_encoder()
    nodes = _node_slices(cnn_trace)
    graph = {n.name: n.op_type for n in model.graph.node}
    got = dict(zip(nodes["name"].astype(str), nodes["category"].astype(str), strict=True))
    assert got == graph
    runs = nodes["args"].map(lambda a: json.loads(a)["run"])
    assert sorted(runs.value_counts().items()) == [(0, 7), (1, 7), (2, 7)]
    for _, per_run in nodes.groupby(runs):
        assert sorted(per_run["name"].astype(str)) == sorted(graph)
    assert set(nodes["track_name"]) == {"CPUExecutionProvider"} and set(nodes["device"]) == {"cpu"}
    host = cnn_trace.slices_df()
    host = host[host["track_kind"] == "host"]
    assert (host["name"] == "model_run").sum() == 3
    # node executions lie inside their run
    mr = host[host["name"] == "model_run"].sort_values("ts")
    for k, (_, r) in enumerate(mr.iterrows()):
        inside = nodes[runs == k]
        assert (inside["ts"] >= r["ts"]).all() and (inside["ts"] + inside["dur"] <= r["ts"] + r["dur"]).all()


def test_cnn_flops_and_bytes_follow_the_formulas(cnn_trace) -> None:
    nodes = _node_slices(cnn_trace).drop_duplicates("name").set_index("name")
    conv1 = 2 * (2 * 8 * 16 * 16) * 3 * 3 * 3
    conv2 = 2 * (2 * 8 * 16 * 16) * (8 // 2) * 3 * 3
    gemm = 2 * 2 * 10 * 512
    assert nodes.loc["conv1", "flops"] == conv1
    assert nodes.loc["conv2_grouped", "flops"] == conv2
    assert nodes.loc["fc", "flops"] == gemm
    assert nodes.loc["relu1", "flops"] == 2 * 8 * 16 * 16
    assert nodes.loc["pool", "flops"] == (2 * 8 * 8 * 8) * 4
    assert nodes.loc["flatten", "flops"] == 0
    # bytes: inputs + outputs, fp32; the Gemm weight comes from the graph (ORT pre-packs it)
    assert nodes.loc["conv1", "bytes"] == 4 * (2 * 3 * 16 * 16 + 8 * 3 * 3 * 3 + 8 + 2 * 8 * 16 * 16)
    assert nodes.loc["fc", "bytes"] == 4 * (2 * 512 + 10 * 512 + 10 + 2 * 10)
    assert set(nodes["dtype"]) == {"fp32"}


def test_mlp_matmul_add_relu() -> None:
    x = RNG.standard_normal((4, 32)).astype(np.float32)
    tr = profile(mlp(), {"x": x}, runs=2, optimize=False)
    nodes = _node_slices(tr)
    assert nodes.groupby("name", observed=True).size().to_dict() == {n: 2 for n in ("mm1", "add1", "act", "mm2", "add2")}
    one = nodes.drop_duplicates("name").set_index("name")
    assert one.loc["mm1", "flops"] == 2 * 4 * 64 * 32
    assert one.loc["mm2", "flops"] == 2 * 4 * 16 * 64
    assert one.loc["add1", "flops"] == 4 * 64 and one.loc["act", "flops"] == 4 * 64
    assert one.loc["mm1", "category"] == "MatMul"


def test_optimized_graph_still_imports_with_shapes_from_ort() -> None:
    x = RNG.standard_normal((2, 3, 16, 16)).astype(np.float32)
    tr = profile(cnn_encoder(), {"x": x}, runs=1, optimize=True)
    nodes = _node_slices(tr)
    assert len(nodes) >= 3
    conv = nodes[nodes["category"] == "Conv"]
    assert len(conv) >= 1 and (conv["flops"] > 0).all()  # fused kernels keep op type and estimates


def test_read_profile_file_and_damage(tmp_path) -> None:
    x = RNG.standard_normal((4, 32)).astype(np.float32)
    kept = tmp_path / "ort.json"
    full = profile(mlp(), {"x": x}, runs=2, optimize=False, keep_profile=kept)
    again = read_ort_profile(kept, model=mlp())
    assert again.slices.num_rows == full.slices.num_rows
    raw = kept.read_bytes()
    cut = tmp_path / "cut.json"
    cut.write_bytes(raw[: int(len(raw) * 0.6)])
    part = read_ort_profile(cut)
    assert 0 < part.slices.num_rows < full.slices.num_rows
    assert part.metadata.import_stats.dropped == {"ort_json_truncated": 1}
    bad = tmp_path / "bad.json"
    bad.write_text("this is not json")
    with pytest.raises(TraceFormatError, match="bad.json"):
        read_ort_profile(bad)
