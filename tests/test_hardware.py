"""Hardware presets load with sane figures; invalid spec files fail with the file and key named."""

from __future__ import annotations

import pytest

from profiler.errors import SpecError
from profiler.hardware import canonical_dtype, load_spec, preset_names


def test_presets_exist_and_load() -> None:
    names = preset_names()
    assert {"edge-npu", "dojo-tile", "h100-sxm", "a100-sxm"} <= set(names)
    for n in names:
        s = load_spec(n)
        assert s.cores > 0 and s.clock_hz > 0
        assert s.dram.bandwidth > 0 and s.dram.kind == "dram"
        for peak in s.peak_flops.values():
            assert peak > 0


def test_h100_figures_match_the_datasheet() -> None:
    s = load_spec("h100-sxm")
    assert s.peak("bf16") == pytest.approx(989.4e12)
    assert s.peak("torch.float8_e4m3fn") == pytest.approx(1978.9e12)
    assert s.dram.bandwidth == pytest.approx(3.35e12)
    assert s.ridge_point("bf16") == pytest.approx(989.4e12 / 3.35e12)


def test_edge_npu_is_int8_first_and_a100_has_no_fp8() -> None:
    edge = load_spec("edge-npu")
    assert edge.peak("int8") == pytest.approx(2 * 96 * 96 * 2 * 2e9, rel=0.01)
    assert edge.systolic is not None and (edge.systolic.rows, edge.systolic.cols) == (96, 96)
    assert not load_spec("a100-sxm").supports("fp8")
    with pytest.raises(SpecError, match="no peak for dtype"):
        load_spec("a100-sxm").peak("fp8")


def test_dtype_aliases() -> None:
    assert canonical_dtype("torch.bfloat16") == "bf16"
    assert canonical_dtype("Float") == "fp32"
    assert canonical_dtype("half") == "fp16"


GOOD = """
name = "mine"
clock_hz = 1e9
cores = 4
[peak_flops]
bf16 = 100e12
[[memory]]
name = "hbm"
bandwidth = 1e12
capacity = 16e9
[dma]
engines = 2
bandwidth = 50e9
"""


def test_user_spec_file(tmp_path) -> None:
    p = tmp_path / "mine.toml"
    p.write_text(GOOD)
    s = load_spec(p)
    assert s.name == "mine" and s.peak("bfloat16") == 100e12 and s.dma.latency_ns == 0


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda t: t.replace("cores = 4", 'cores = "four"'), "'cores' must be int"),
        (lambda t: t.replace("bf16 = 100e12", "bf17 = 100e12"), "unknown dtype"),
        (lambda t: t.replace("bandwidth = 1e12", "bandwidth = -1"), "must be positive"),
        (lambda t: t.replace("[dma]\nengines = 2\nbandwidth = 50e9\n", ""), "missing required key 'dma'"),
        (lambda t: "turbo = true\n" + t, "unknown key"),
        (lambda t: t.replace("[peak_flops]", "[peak_flops"), "invalid TOML"),
    ],
)
def test_invalid_specs_name_file_and_key(tmp_path, edit, message) -> None:
    p = tmp_path / "bad.toml"
    p.write_text(edit(GOOD))
    with pytest.raises(SpecError, match=message) as info:
        load_spec(p)
    assert str(p) in str(info.value)


def test_unknown_preset() -> None:
    with pytest.raises(SpecError, match="not a preset"):
        load_spec("tpu-v9")


def test_mi210_figures_match_amds_data_sheet() -> None:
    s = load_spec("mi210")
    assert s.cores == 104 and s.clock_hz == pytest.approx(1.7e9)
    assert s.peak("fp16") == pytest.approx(181.0e12) and s.peak("bf16") == pytest.approx(181.0e12)
    assert s.peak("fp64") == pytest.approx(45.3e12) and s.vector_flops == pytest.approx(22.6e12)
    assert s.dram.bandwidth == pytest.approx(1.6384e12) and s.dram.capacity == 64 * 2**30
    assert s.memory_level("l2").capacity == 8 * 2**20
    assert not s.supports("fp8")


def test_h100_fp64_is_the_tensor_core_figure_like_a100() -> None:
    assert load_spec("h100-sxm").peak("fp64") == pytest.approx(67.0e12)
    assert load_spec("a100-sxm").peak("fp64") == pytest.approx(19.5e12)


def test_every_preset_figure_names_a_source_or_assumption() -> None:
    """Each value line of a preset's [timing] (and the rest) carries a comment: [n], FIT or ASSUMPTION."""
    from importlib import resources

    for n in preset_names():
        text = resources.files("profiler.specs").joinpath(f"{n}.toml").read_text()
        section = ""
        for line in text.splitlines():
            s = line.strip()
            if s.startswith("["):
                section = s
                continue
            if not s or s.startswith("#") or "=" not in s or section in ("[sources]",) or s.startswith(
                    ("name", "description")):
                continue
            if section.startswith("[timing") or section in ("[peak_flops]", "[[memory]]", "[dma]", "[systolic]", ""):
                if s.split("=")[0].strip() in ("kind", "dataflow", "llc"):
                    continue
                assert "#" in s, (n, line)


@pytest.mark.parametrize(("table", "message"), [
    ("[timing]\ndram_efficiency = 1.5\n", "must be in \\(0, 1\\]"),
    ("[timing]\nllc = \"l3\"\n", "'llc' must name a memory level"),
    ("[timing]\nturbo = 1\n", "unknown key"),
    ("[timing.launch_ns]\nconv = 5\n", "unknown name"),
    ("[timing.matmul_efficiency]\nbf17 = 0.5\n", "unknown name"),
    ("[timing]\ntile_sizes = [64, -1]\n", "tile_sizes"),
])
def test_invalid_timing_tables_name_the_key(tmp_path, table, message) -> None:
    p = tmp_path / "t.toml"
    p.write_text(GOOD + "\n" + table)
    with pytest.raises(SpecError, match=message) as info:
        load_spec(p)
    assert str(p) in str(info.value)


def test_timing_table_parses_per_kind_and_per_dtype(tmp_path) -> None:
    p = tmp_path / "t.toml"
    p.write_text(GOOD + "\n[timing]\ndram_efficiency = 0.9\n[timing.launch_ns]\ndefault = 3000\ngemm = 9000\n"
                 "[timing.matmul_efficiency]\nbfloat16 = 0.8\n")
    t = load_spec(p).timing
    assert t.launch("gemm") == 9000 and t.launch("softmax") == 3000 and t.host("gemm") == 0
    assert t.matmul("bf16") == 0.8 and t.matmul("fp32") == 1.0 and t.dram_efficiency == 0.9
