"""Fleet analysis: many generated traces (runs x ranks) on a Dask LocalCluster with 2 workers.

The generated job (bench/fleet_traces.py) has known answers: rank 3 of run01 runs its GEMMs twice
as long (an outlier rank), and run03's GEMMs are 20 % longer than run02's (a regression).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from analysis.fleet import run_fleet
from bench.fleet_traces import write_job
from profiler.cache import cached_trace, content_key

distributed = pytest.importorskip("dask.distributed")

RUNS, RANKS = 4, 8  # 32 traces


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    root = tmp_path_factory.mktemp("fleet") / "jobs"
    paths = write_job(root, RUNS, RANKS, steps=40, slow_rank=(1, 3), run_scale={3: 1.2})
    return root, [str(p) for p in paths]


@pytest.fixture(scope="module")
def serial(job, tmp_path_factory):
    root, paths = job
    return run_fleet(paths, str(root), str(tmp_path_factory.mktemp("cache_serial")))


def _comparable(rep) -> dict[str, pd.DataFrame]:
    return {"traces": rep.traces.drop(columns=["cached"]), "kernels": rep.kernels, "outliers": rep.outliers,
            "regressions": rep.regressions}


def test_serial_fleet_finds_the_planted_outlier_and_regression(serial):
    assert len(serial.traces) == RUNS * RANKS and serial.traces["error"].isna().all()
    assert sorted(set(serial.traces["run"])) == ["run00", "run01", "run02", "run03"]
    assert serial.traces.groupby("run")["rank"].apply(sorted).tolist() == [list(range(RANKS))] * RUNS
    o = serial.outliers
    assert set(zip(o["run"], o["rank"], strict=True)) == {("run01", 3)}
    # the slow rank's total grew by its GEMM time: 40 steps x 400 us x (2 - 1)
    row = o[o["metric"] == "total_ns"].iloc[0]
    assert row["value"] - row["median"] == 40 * 400_000
    (reg,) = serial.regressions.itertuples()
    assert reg.base_run == "run02" and reg.run == "run03" and reg.delta_pct == pytest.approx(20.0)
    kinds = {f.kind for f in serial.findings}
    assert kinds == {"outlier_rank", "fleet_regression"}


def _kill_one_worker_after_first_result(client, futures):
    """Wait for one result, then SIGKILL one worker process (its nanny starts a new one)."""
    distributed.wait(futures, return_when="FIRST_COMPLETED")
    pids = client.run(os.getpid)
    victim = sorted(pids.items())[0][1]
    os.kill(victim, signal.SIGKILL)
    return victim


def test_local_cluster_with_a_killed_worker_gives_the_serial_table(job, serial, tmp_path):
    root, paths = job
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster, distributed.Client(cluster) as client:
        killed = []

        def mapper(func, items):
            futures = client.map(func, items, retries=3, pure=False)
            killed.append(_kill_one_worker_after_first_result(client, futures))
            return client.gather(futures)

        rep = run_fleet(paths, str(root), str(tmp_path / "cache"), mapper=mapper)
        # the killed worker really died mid-run (the nanny started another in its place)
        assert killed and killed[0] not in client.run(os.getpid).values()
    a, b = _comparable(serial), _comparable(rep)
    for k in a:
        pd.testing.assert_frame_equal(a[k].reset_index(drop=True), b[k].reset_index(drop=True), check_dtype=False)


def test_cache_is_keyed_by_content(job, tmp_path):
    root, paths = job
    t1, hit1 = cached_trace(paths[0], tmp_path)
    copy = tmp_path / "renamed.json.gz"
    shutil.copy(paths[0], copy)
    t2, hit2 = cached_trace(copy, tmp_path)
    assert (hit1, hit2) == (False, True) and t2.slices.num_rows == t1.slices.num_rows
    assert content_key(paths[0]) != content_key(paths[1])  # rank 0 and rank 1 differ in content
    assert len(list(tmp_path.glob("*.trace"))) == 1


def _cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "profiler", *args], capture_output=True, text=True, timeout=600,
                          env={**os.environ, **(env or {})})


def test_cli_fleet_json_rows_and_budgets(job, tmp_path):
    root, paths = job
    env = {"ACCEL_PROFILER_CACHE": str(tmp_path / "cache")}
    t0 = time.perf_counter()
    r = _cli("fleet", str(root), "--workers", "2", "--format", "json", env=env)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["traces"]) == RUNS * RANKS
    assert {(t["run"], t["rank"]) for t in doc["traces"]} == {(f"run{r:02d}", k) for r in range(RUNS) for k in range(RANKS)}
    assert doc["summary"]["outliers"] == 2 and doc["summary"]["regressions"] == 1
    assert time.perf_counter() - t0 < 600
    budget = tmp_path / "b.toml"
    budget.write_text("total_ms_max = 30\n")  # 40 steps: 23 ms a rank, the slow one 39 ms
    r = _cli("fleet", str(root), "--serial", "--budget", str(budget), env=env)
    assert r.returncode == 1, r.stderr
    assert "total_ms_max" in r.stdout and "Traceback" not in r.stderr
    assert "32 from the cache" in r.stdout
    r = _cli("fleet", str(tmp_path / "nothing-here"), "--serial", env=env)
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_cli_fleet_on_a_running_scheduler(job, tmp_path):
    root, paths = job
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                  silence_logs=40) as cluster:
        r = _cli("fleet", str(root / "run01"), "--scheduler", cluster.scheduler_address, "--format", "json",
                 env={"ACCEL_PROFILER_CACHE": str(tmp_path / "cache")})
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert len(doc["traces"]) == RANKS and {o["rank"] for o in doc["outliers"]} == {3}
    r = _cli("fleet", str(root / "run01"), "--scheduler", "tcp://127.0.0.1:9", "--format", "json")
    assert r.returncode == 2 and "cannot connect" in r.stderr and "Traceback" not in r.stderr
