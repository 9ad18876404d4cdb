"""Collective algorithms as steps of point-to-point transfers.

A collective over devices ``group`` (in ring order) is a list of steps; a step is a list of
``(src, dst, bytes)`` transfers that run at the same time, and a device starts its part of step
k once it has sent and received everything of step k-1 (the data it forwards arrived then).

* ring all-reduce of S bytes on n devices: n-1 reduce-scatter steps then n-1 all-gather steps, each
  moving S/n from every device to its ring successor: 2(n-1)/n * S per device in total (NCCL's
  ring algorithm; Patarasuk and Yuan, 2009, show it bandwidth-optimal);
* ring reduce-scatter / all-gather: the first / second half of the above (S is the full buffer);
* tree all-reduce: a binary tree, reduced up then broadcast down, S bytes per edge per step,
  2 * ceil(log2 n) steps (not pipelined: a lower bound on steps, an upper one on time for big S);
* all-to-all of S bytes per device: n-1 steps, in step k device i sends S/n to device i+k (mod n)
  (the pairwise exchange most libraries use).
"""

from __future__ import annotations

import math

Step = list[tuple[int, int, float]]
ALGORITHMS = ("ring", "tree")
KINDS = ("all_reduce", "all_gather", "reduce_scatter", "all_to_all", "send_recv")


def ring_steps(group: list[int], chunk: float, n_steps: int) -> list[Step]:
    n = len(group)
    return [[(group[i], group[(i + 1) % n], chunk) for i in range(n)] for _ in range(n_steps)]


def tree_all_reduce(group: list[int], nbytes: float) -> list[Step]:
    """Binary tree over ``group`` (heap order): reduce towards the root, then broadcast back."""
    n = len(group)
    depth = math.ceil(math.log2(n)) if n > 1 else 0
    level = [int(math.floor(math.log2(i + 1))) for i in range(n)]
    up: list[Step] = []
    for lv in range(depth, 0, -1):  # deepest children send first
        up.append([(group[i], group[(i - 1) // 2], nbytes) for i in range(1, n) if level[i] == lv])
    down = [[(d, s, b) for s, d, b in step] for step in reversed(up)]
    return [s for s in up + down if s]


def steps_for(kind: str, group: list[int], nbytes: float, algorithm: str = "ring") -> list[Step]:
    """The steps of collective ``kind`` of ``nbytes`` over ``group`` (see the module docstring)."""
    n = len(group)
    if n <= 1:
        return []
    if kind == "all_reduce":
        if algorithm == "tree":
            return tree_all_reduce(group, nbytes)
        return ring_steps(group, nbytes / n, 2 * (n - 1))
    if kind in ("all_gather", "reduce_scatter"):
        return ring_steps(group, nbytes / n, n - 1)
    if kind == "all_to_all":
        return [[(group[i], group[(i + k) % n], nbytes / n) for i in range(n)] for k in range(1, n)]
    if kind == "send_recv":
        return [[(group[0], group[1], nbytes)]]
    raise ValueError(f"unknown collective {kind!r}; use one of {', '.join(KINDS)}")


def bytes_per_device(kind: str, n: int, nbytes: float) -> float:
    """Bytes each device sends in the ring/pairwise algorithms above (for checks and reports)."""
    if n <= 1:
        return 0.0
    if kind == "all_reduce":
        return 2 * (n - 1) / n * nbytes
    if kind in ("all_gather", "reduce_scatter", "all_to_all"):
        return (n - 1) / n * nbytes
    return nbytes
