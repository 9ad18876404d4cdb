"""Guards every test gets."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _restore_process_environment() -> Iterator[None]:
    """Each test leaves the process environment as it found it.

    Some libraries write ``os.environ`` as a side effect: dask.distributed's LocalCluster sets
    ``MALLOC_TRIM_THRESHOLD_=65536`` and ``OMP_NUM_THREADS=1`` for its workers in the process that
    starts it.  A later test's subprocess (``profiler ui`` measured for its page faults) would
    inherit them and run with glibc handing freed memory back at once.
    """
    before = dict(os.environ)
    yield
    if dict(os.environ) != before:
        os.environ.clear()
        os.environ.update(before)
