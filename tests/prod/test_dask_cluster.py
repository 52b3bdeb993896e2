"""The jobs with their parallel work on a real Dask cluster: a scheduler and two workers in their
own processes, over TCP on 127.0.0.1 (conftest.py). Extraction, training (one task per target and
horizon) and prediction run on the workers; the bank, the registry's models and the PostgreSQL
energy DB end up as in the embedded run of the same days.

The world is ops_world's (simulated AROME runs over loopback HTTP, measured load in the energy
DB) with two targets, intraday on and a quick LightGBM, so that the weekly job really trains.
Jobs run as `aggregat run ...` in child processes, as cron runs them (and so that the embedded
run's process pool forks a process without this one's threads).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "ops"))  # the jobs' world
from ops_world import DAYS, child_env, make_env, measured_load, simulate_archive  # noqa: E402

from aggregat.bank import Bank, read_forecast, read_load, read_weather  # noqa: E402
from aggregat.config import Environment, load_environment  # noqa: E402
from aggregat.forecast.registry import Registry  # noqa: E402
from aggregat.ops.ledger import Ledger  # noqa: E402
from aggregat.weather.loopback import serve_folder  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

FORECAST = """[env.test.forecast]
intraday = true
min_train_days = 14
validation_days = 7
[env.test.forecast.model_params]
max_rounds = 30
learning_rate = 0.3
min_data_in_leaf = 10
num_leaves = 7
calibration_days = 7
"""
BACKFILL = ("run", "backfill", "--since", str(DAYS[0]), "--until", str(DAYS[0]))
BACKFILL_ALL = ("run", "backfill", "--since", str(DAYS[0]), "--until", str(DAYS[1]))
FAR = ("2020-01-01T00:00Z", "2030-01-01T00:00Z")
HOOK = Path(__file__).with_name("slow_decode.py")


@pytest.fixture(scope="module")
def base_url(tmp_path_factory):
    """The simulated archive of ops_world.DAYS served over loopback HTTP."""
    with serve_folder(simulate_archive(tmp_path_factory.mktemp("archive"))) as url:
        yield url


def measured() -> pd.DataFrame:
    """ops_world's load of ``portfolio`` and a second target (``half``): two training tasks."""
    load = measured_load()
    return pd.concat([load, load.assign(target_id="half", load_mw=load["load_mw"] / 2)],
                     ignore_index=True)


def world(folder: Path, base_url: str, energy_db: str, scheduler: str | None = None,
          root: str | None = None) -> Environment:
    """Env ``test`` in ``folder``; ``scheduler``/``root`` set in its aggregat.toml."""
    folder.mkdir(parents=True, exist_ok=True)
    config = make_env(folder, base_url, measured(), energy_db=energy_db, extra=FORECAST)
    lines = [f'root = "{root or "data"}"']
    if scheduler:
        lines.append(f'scheduler = "{scheduler}"')
    config.write_text(config.read_text().replace('root = "data"', "\n".join(lines), 1))
    env = load_environment("test", config)
    assert env.scheduler == scheduler
    return env


def aggregat(env: Environment, *args: str, timeout_s: float = 600) -> subprocess.CompletedProcess:
    """``aggregat ARGS`` on env ``test`` in a child process."""
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", *args],
                          env=child_env(AGGREGAT_CONFIG=env.source_file, AGGREGAT_ENV="test"),
                          cwd=Path(env.source_file).parent, capture_output=True, text=True,
                          timeout=timeout_s)


def run_jobs(env: Environment) -> None:
    """backfill of the first day, weekly training, daily of the second day: all ok."""
    for args in (BACKFILL, ("run", "weekly"), ("run", "daily", "--date", str(DAYS[1]))):
        done = aggregat(env, *args)
        assert done.returncode == 0, (args, done.stderr)


def snapshot(env: Environment) -> dict:
    """What the jobs leave, model versions replaced by the content hash of their model (a
    version also names its training time)."""
    bank, registry = Bank(env.bank), Registry(env.registry)

    def model_hash(version: str, target: str) -> str:
        return version if version == "baseline" else registry.meta(target, version)["model_hash"]

    def hashed(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.sort_values(["target_id", "issue_time", "valid_time"]).reset_index(drop=True)
        frame["model_version"] = [model_hash(v, t) for v, t in
                                  zip(frame["model_version"], frame["target_id"], strict=True)]
        return frame

    engine = sa.create_engine(env.energy_db)
    with engine.connect() as conn:
        published = pd.read_sql("SELECT target_id, issue_time, valid_time, p10_mw, p50_mw, "
                                "p90_mw, model_version FROM load_forecasts", conn)
    engine.dispose()
    weather = read_weather(bank, *FAR).drop(columns=["available_at"])  # the download time
    return {
        "weather": weather.sort_values(["model", "run_time", "valid_time", "location"])
                          .reset_index(drop=True),
        "load": read_load(bank).drop(columns=["updated_at"]).reset_index(drop=True),
        "forecast": hashed(read_forecast(bank)),
        "published": hashed(published),
        "models": pd.DataFrame(sorted((t, registry.meta(t)["model_hash"])
                                      for t in registry.targets()), columns=["target", "hash"]),
    }


def assert_same(a: dict, b: dict) -> None:
    for key in a:
        pd.testing.assert_frame_equal(a[key], b[key], obj=key)


def task_prefixes(stream: list[dict]) -> set[str]:
    from dask.utils import key_split

    return {key_split(t["key"]) for t in stream}


def test_jobs_on_a_tcp_cluster_match_the_embedded_run(base_url, tmp_path, pg_database_factory,
                                                     dask_cluster):
    from distributed import Client, get_task_stream

    embedded = world(tmp_path / "embedded", base_url, pg_database_factory())
    run_jobs(embedded)
    reference = snapshot(embedded)
    assert len(reference["models"]) == 4  # 2 targets x (day-ahead, intraday)
    assert not reference["models"]["hash"].str.startswith("baseline").any()
    assert (reference["forecast"]["model_version"] != "baseline").any()  # the daily used them

    on_dask = world(tmp_path / "dask", base_url, pg_database_factory(), scheduler=dask_cluster)
    with Client(dask_cluster) as client, get_task_stream(client) as stream:
        run_jobs(on_dask)
    ran = task_prefixes(stream.data)
    assert {"run_task", "train_task", "predict_task"} <= ran, ran  # key_split drops "_"
    assert len({t["worker"] for t in stream.data}) == 2  # both workers took work
    assert_same(snapshot(on_dask), reference)


def _worker_pids(address: str) -> dict[str, int]:
    from distributed import Client

    with Client(address) as client:
        return client.run(os.getpid)


def test_a_worker_killed_mid_extract_reruns_to_the_same_bank(base_url, tmp_path,
                                                             pg_database_factory,
                                                             start_dask_cluster):
    """A worker process dies (SIGKILL) while it decodes a chunk: Dask gives its tasks to the
    other worker (its nanny starts a new one); the run completes, or fails in one line and the
    rerun completes; no duplicate row and no partial partition."""
    reference_env = world(tmp_path / "embedded", base_url, pg_database_factory())
    assert aggregat(reference_env, *BACKFILL_ALL).returncode == 0
    reference = snapshot(reference_env)

    marks = tmp_path / "marks"
    marks.mkdir()
    address, stop = start_dask_cluster(2, preload=str(HOOK), env={
        "AGGREGAT_TEST_DECODE_MARKS": str(marks), "AGGREGAT_TEST_DECODE_SLEEP_S": "0.3"})
    try:
        env = world(tmp_path / "dask", base_url, pg_database_factory(), scheduler=address)
        pids = set(_worker_pids(address).values())
        killed: list[int] = []

        def kill_the_first_busy_worker() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and not killed:
                busy = [int(p.name) for p in marks.iterdir() if int(p.name) in pids]
                if busy:
                    os.kill(busy[0], signal.SIGKILL)
                    killed.append(busy[0])
                time.sleep(0.05)

        killer = threading.Thread(target=kill_the_first_busy_worker, daemon=True)
        killer.start()
        first = aggregat(env, *BACKFILL_ALL, timeout_s=300)  # a hang, not a slow machine
        killer.join(5)
        assert killed, "no worker took an extract task"
        # 2026-12-07: the job logged an AssertionError of distributed.client after the kill.
        assert "Traceback" not in first.stderr and "AssertionError" not in first.stderr, \
            first.stderr
        if first.returncode != 0:  # allowed: one clean line per problem, the rerun completes
            assert first.returncode == 3 and "Traceback" not in first.stderr, first.stderr
            rerun = aggregat(env, *BACKFILL_ALL)
            assert rerun.returncode == 0, rerun.stderr
        got = snapshot(env)
        keys = ["model", "run_time", "valid_time", "location"]
        assert not got["weather"].duplicated(keys).any()
        assert_same(got, reference)
        leftovers = [p for p in Path(env.bank.replace("file://", "")).rglob("*")
                     if ".tmp-" in p.name]
        assert leftovers == []
        steps = {(e.step, e.partition): e.status for e in Ledger(Bank(env.bank)).entries()}
        assert all(s == "ok" for s in steps.values()), steps
    finally:
        stop()


def test_jobs_on_a_tcp_cluster_with_the_bank_on_s3(base_url, tmp_path, pg_database_factory,
                                                   s3_bucket, start_dask_cluster):
    """The same jobs with root on the S3 API server, on workers started after it (they inherit
    its AWS_* variables)."""
    embedded = world(tmp_path / "embedded", base_url, pg_database_factory())
    assert aggregat(embedded, *BACKFILL).returncode == 0
    address, stop = start_dask_cluster(2)
    try:
        env = world(tmp_path / "dask", base_url, pg_database_factory(), scheduler=address,
                    root=f"s3://{s3_bucket}")
        done = aggregat(env, *BACKFILL)
        assert done.returncode == 0, done.stderr
        a, b = snapshot(embedded), snapshot(env)
        assert_same({k: a[k] for k in ("weather", "forecast", "published")}, b)
    finally:
        stop()
