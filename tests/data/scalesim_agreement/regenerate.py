"""Regenerate the stored SCALE-Sim 3.0.0 runs that tests/test_systolic_agreement.py compares against.

    SCALESIM_PYTHON=.venv-scalesim/bin/python python tests/data/scalesim_agreement/regenerate.py [--jobs 2] [RUN ...]

Each run directory (``<dataflow>_<rows>x<cols>_<sram>``) holds exactly what SCALE-Sim read
(``scalesim.cfg``, ``topology.csv``) and the three reports it wrote, unmodified.  The per-cycle
trace files are not kept (``save_traces=False``): they are hundreds of MB for these layers, and the
agreement test needs only the per-layer cycles and access counts of the reports.

The layers are GEMMs of real models, as SCALE-Sim's own topologies give them
(``topologies/conv_nets/Resnet50.csv``, ``mobilnet_paper.csv``: a convolution is the GEMM
``M = output pixels, N = filters, K = window x channels``) and BERT-base attention (sequence 128,
one head: ``Q @ K^T`` and ``P @ V``).  Layers whose weights are millions of words (fully connected
heads, GPT-2 projections) are left out only because SCALE-Sim needs many minutes per layer for them.  Two SRAM sizes:
``large`` holds the operands of most layers, ``small`` (16/16/8 KiB) makes SCALE-Sim refetch and stall.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from collectors.scalesim import ScaleSimConfig, run_scalesim_result  # noqa: E402
from collectors.scalesim.topology import ConvLayer, GemmLayer, Layer  # noqa: E402

#: (name, M, N, K)
LAYERS = [
    ("resnet50_CB2a_1", 3136, 64, 64),
    ("resnet50_IB3b_1", 784, 128, 512),
    ("resnet50_IB4b_3", 196, 1024, 256),
    ("resnet50_IB5b_1", 49, 512, 2048),
    ("mobilenet_Conv5", 3136, 128, 64),
    ("mobilenet_Conv13", 196, 512, 256),
    ("mobilenet_Conv17", 49, 1024, 512),
    ("bert_base_qk", 128, 128, 64),
    ("bert_base_av", 128, 64, 128),
]

#: Layers of the runs on the 32x32 and 64x64 arrays (except os_64x64_large, which has all): SCALE-Sim
#: takes several times longer per layer on smaller arrays (more demand rows, each word looked up in
#: its ~50-set active window), up to an hour per run for the full list.
FEWER_LAYERS = ("resnet50_IB4b_3", "mobilenet_Conv13", "bert_base_qk", "bert_base_av")
ALL_LAYER_RUNS = ("os_64x64_large",)

SRAM = {"large": (512, 512, 256), "small": (16, 16, 8)}
ARRAYS = (32, 64, 128)
DATAFLOWS = ("os", "ws", "is")
BANDWIDTH = 10  # words per cycle, SCALE-Sim's default


#: A convolution topology (SCALE-Sim's conv mode, im2col addresses) where a 3x3 window repeats IFMAP
#: addresses: the comparison runs it as its GEMM, which the test shows agrees for 1x1 but not for 3x3.
CONV_RUN = "conv_ws_16x16_64k"
CONV_LAYERS = [ConvLayer("conv3x3", 20, 20, 3, 3, 16, 32, 1), ConvLayer("conv1x1", 14, 14, 1, 1, 64, 32, 1)]


def runs() -> dict[str, ScaleSimConfig]:
    out = {CONV_RUN: ScaleSimConfig(rows=16, cols=16, dataflow="ws", ifmap_sram_kb=64, filter_sram_kb=64,
                                    ofmap_sram_kb=64, bandwidth=4, run_name=CONV_RUN)}
    for df in DATAFLOWS:
        for a in ARRAYS:
            for sram, (i, f, o) in SRAM.items():
                name = f"{df}_{a}x{a}_{sram}"
                out[name] = ScaleSimConfig(rows=a, cols=a, dataflow=df, ifmap_sram_kb=i, filter_sram_kb=f,
                                           ofmap_sram_kb=o, bandwidth=BANDWIDTH, run_name=name)
    return out


def layers(run: str) -> list[Layer]:
    """The layers of one run: all of them on the 128x128 array and in ALL_LAYER_RUNS, else FEWER_LAYERS."""
    if run == CONV_RUN:
        return list(CONV_LAYERS)
    keep = None if "_128x128_" in run or run in ALL_LAYER_RUNS else FEWER_LAYERS
    return [GemmLayer(n, m, nn, k) for n, m, nn, k in LAYERS if keep is None or n in keep]


def regenerate(name: str, cfg: ScaleSimConfig) -> str:
    dest = HERE / name
    tmp = HERE / f".{name}.tmp"
    t0 = time.monotonic()
    run_scalesim_result(cfg, layers(name), keep_dir=tmp, save_traces=False)
    if dest.exists():
        shutil.rmtree(dest)
    tmp.rename(dest)
    return f"{name}: {time.monotonic() - t0:.0f} s"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", nargs="*", help="run names (default: all)")
    ap.add_argument("--jobs", type=int, default=1)
    args = ap.parse_args()
    todo = runs()
    names = args.runs or list(todo)
    with ThreadPoolExecutor(args.jobs) as pool:
        for msg in pool.map(lambda n: regenerate(n, todo[n]), names):
            print(msg, flush=True)


if __name__ == "__main__":
    main()
