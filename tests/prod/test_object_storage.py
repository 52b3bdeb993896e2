"""The production shape on real servers: an ``s3://`` root on a real S3 API (moto server), the
energy DB on PostgreSQL, extraction on a Dask cluster of separate processes; and a ``gs://`` root
on the GCS emulator. Nothing here has a test-only path in the product: it reaches the stores
through the standard variables (AWS_ENDPOINT_URL, STORAGE_EMULATOR_HOST)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest
from prod_cluster import start_dask_cluster

import aggregat
from aggregat.bank import Bank
from aggregat.errors import InputError, LockedError
from aggregat.ops.lock import RunLock
from aggregat.storage import Store
from aggregat.weather.datalake import Datalake
from aggregat.weather.extract import extract_run
from child_process import child_env

SITES = ("id,name,lat,lon\nlyon,Lyon,45.71,4.85\nfeyzin,Feyzin,45.67,4.86\n"
         "jarrie,Jarrie,45.09,5.75\n")
RUN = datetime(2026, 11, 27, tzinfo=UTC)


def _config(folder: Path, envs: dict[str, dict[str, str]]) -> Path:
    """An aggregat.toml with one [env.NAME] per entry (string settings only)."""
    text = "".join(f"[env.{name}]\n" + "".join(f'{k} = "{v}"\n' for k, v in settings.items())
                   for name, settings in envs.items())
    path = folder / "aggregat.toml"
    path.write_text(text)
    return path


def _cli(*args: str, config: Path, cwd: Path, env: dict[str, str] | None = None,
         timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", *args, "--config",
                           str(config)], capture_output=True, text=True, timeout=timeout,
                          cwd=cwd, env=env or child_env(COLUMNS="200",
                                                        AGGREGAT_HOME=str(cwd / "home")))


@pytest.fixture(scope="module")
def cluster(s3_server):
    """A Dask scheduler + 2 worker processes started AFTER the S3 server, so that the workers
    inherit its variables."""
    address, stop = start_dask_cluster(2)
    try:
        yield address
    finally:
        stop()


# -- the demo on s3 + PostgreSQL + Dask, then health ---------------------------------------------
@pytest.mark.postgres
@pytest.mark.slow
def test_demo_then_health_on_s3_postgres_and_dask(tmp_path, s3_bucket, pg_database, cluster):
    root = f"s3://{s3_bucket}/aggregat"
    config = _config(tmp_path, {"prod": {"root": root, "energy_db": pg_database,
                                         "scheduler": cluster}})
    out = _cli("demo", "--env", "prod", "--days", "2", "--history-days", "30", config=config,
               cwd=tmp_path)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    assert "Traceback" not in out.stderr and "UnsupportedOperation" not in out.stderr
    assert "health: ok" in out.stdout
    store = Store(root)
    assert store.exists(".aggregat-demo.json")
    assert store.listdir("quarantine") == []  # no good file blamed
    runs = Bank(f"{root}/bank").partitions("weather_forecast", {"model": "arome-0025"})
    assert len(runs) >= 32  # 30 migrated + the 2 extracted days
    assert not (tmp_path / "s3:").exists()  # nothing written to a local folder named after the URL
    health = _cli("health", "--env", "prod", config=config, cwd=tmp_path)
    assert health.returncode == 0, health.stdout[-3000:] + health.stderr[-3000:]


@pytest.mark.postgres
def test_demo_refuses_an_environment_holding_other_data(tmp_path, s3_bucket, pg_database_factory):
    """Bank data without the demo's marker, or energy-DB rows without it: exit 2, one line."""
    root = f"s3://{s3_bucket}/real"
    Store(f"{root}/bank").write_bytes("load/target=x/month=2026-11/data.parquet", b"PAR1")
    busy_db = pg_database_factory()
    aggregat.init_energy_db(aggregat.open_env("db", _config(tmp_path, {"db": {
        "root": f"s3://{s3_bucket}/empty", "energy_db": busy_db}})))
    import sqlalchemy as sa

    engine = sa.create_engine(busy_db)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO load_measurements VALUES ('x', now(), 1.0, now())"))
    engine.dispose()
    config = _config(tmp_path, {
        "prod": {"root": root, "energy_db": pg_database_factory()},
        "db": {"root": f"s3://{s3_bucket}/empty", "energy_db": busy_db}})
    for env, what in (("prod", f"bank {root}/bank"), ("db", "rows in table load_measurements")):
        out = _cli("demo", "--env", env, "--days", "1", "--history-days", "30", config=config,
                   cwd=tmp_path)
        assert out.returncode == 2, out.stdout + out.stderr
        assert what in out.stderr and "--force" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and len(out.stderr.strip().splitlines()) == 1
    assert not Store(root).exists(".aggregat-demo.json")
    # forced, the root is marked as the demo's (the run itself is the test above)
    from aggregat.demo.run import check_demo_target

    prod = aggregat.open_env("prod", config)
    with pytest.raises(InputError):
        check_demo_target(prod)
    check_demo_target(prod, force=True)
    check_demo_target(prod)  # marked: no longer refused


# -- the same day on s3 (through Dask) and on the embedded local defaults ------------------------
@pytest.mark.slow
def test_daily_chain_on_s3_gives_the_rows_of_the_embedded_run(tmp_path, s3_bucket, cluster):
    from aggregat.demo.run import run_demo

    local_root = tmp_path / "local"
    s3_root = f"s3://{s3_bucket}/aggregat"
    config = _config(tmp_path, {
        "local": {"root": str(local_root), "energy_db": f"sqlite:///{tmp_path}/local.sqlite"},
        "prod": {"root": s3_root, "energy_db": f"sqlite:///{tmp_path}/prod.sqlite",
                 "scheduler": cluster}})
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    os.environ["AGGREGAT_HOME"] = str(tmp_path / "home")
    try:
        for name in ("local", "prod"):
            run_demo(aggregat.open_env(name, config), days=2, history_days=30, now=now,
                     log=lambda _: None)
    finally:
        os.environ.pop("AGGREGAT_HOME")
    for dataset, order, skip in (
            ("weather_forecast", ["model", "run_time", "site_id", "valid_time"], ()),
            ("forecast", ["target_id", "issue_time", "valid_time"],
             ("created_at", "model_version", "run_id"))):
        frames = []
        for root in (str(local_root), s3_root):
            frame = Bank(f"{root}/bank").read(dataset)
            frame = frame.drop(columns=[c for c in skip if c in frame.columns])
            frames.append(frame.sort_values([c for c in order if c in frame.columns])
                          .reset_index(drop=True))
        assert len(frames[0]) > 0
        pd.testing.assert_frame_equal(frames[0], frames[1], check_like=True)


# -- quarantine: only a file proven bad; a good one comes back -----------------------------------
@pytest.fixture(scope="module")
def archive(tmp_path_factory) -> Path:
    """One simulated AROME SP1 run (cropped around the sites), as Météo-France serves it."""
    from aggregat.weather.products import get_product
    from aggregat.weather.simulate import crop_for_points, simulate_run

    root = tmp_path_factory.mktemp("archive")
    product = get_product("arome-0025")
    grid = crop_for_points(product, [45.71, 45.67, 45.09], [4.85, 4.86, 5.75], margin_deg=0.2)
    simulate_run(product, RUN, root, grid=grid, packages=["SP1"], seed=5)
    return root


def _fetched_env(tmp_path: Path, root: str, archive: Path):
    from aggregat.weather.loopback import serve_folder

    (tmp_path / "sites.csv").write_text(SITES)
    env = aggregat.open_env("prod", _config(tmp_path, {"prod": {
        "root": root, "energy_db": f"sqlite:///{tmp_path}/e.sqlite",
        "sites": str(tmp_path / "sites.csv")}}))
    with serve_folder(archive) as base_url:
        aggregat.fetch(env, "arome-0025", RUN, ["SP1"], base_url=base_url).raise_for_partial()
    return env


def _extract(env):
    from aggregat.weather.sites import load_locations

    return extract_run("arome-0025", RUN, datalake=Datalake(env.datalake, env.quarantine),
                       bank=Bank(env.bank), locations=load_locations(env.sites),
                       packages=["SP1"], workers=1)


class _Source:
    """A remote file as the store streams it (s3fs's ``open_async``): ``before_read(pos)`` runs
    (in a thread) before every read after the first, to hold the transfer or to cut it."""

    def __init__(self, data: bytes, before_read=None) -> None:
        self._data, self._pos, self._before, self.size = data, 0, before_read, len(data)

    async def read(self, n: int = -1) -> bytes:
        import asyncio

        if self._pos and self._before is not None:
            await asyncio.get_running_loop().run_in_executor(None, self._before, self._pos)
        end = len(self._data) if n < 0 else self._pos + n
        block, self._pos = self._data[self._pos:end], min(end, len(self._data))
        return block

    async def close(self) -> None:
        pass


def _serve_grib(monkeypatch, serve) -> None:
    """GRIB files are streamed by ``serve(path, data)`` (given the real bytes of the real store)
    instead of the store."""
    import s3fs

    real_open = s3fs.S3FileSystem.open_async

    async def open_async(fs, path, mode="rb", **kw):
        if ".grib2" not in path:
            return await real_open(fs, path, mode, **kw)
        return serve(path, await fs._cat_file(path))

    monkeypatch.setattr(s3fs.S3FileSystem, "open_async", open_async)


@pytest.mark.parametrize("failure", ["denied", "short read"])
def test_a_store_failure_never_quarantines(tmp_path, s3_bucket, archive, monkeypatch, failure):
    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/q", archive)

    def failing(path, data):
        if failure == "denied":
            raise PermissionError(f"Access Denied reading {path}")
        return _Source(data[:1000])  # what a cut connection gives: the first bytes, then EOF

    _serve_grib(monkeypatch, failing)
    report = _extract(env)
    assert report.bad_files and report.partial
    assert report.quarantined == [] and report.corrupt == set()
    assert all("left in place" in message for _, message in report.bad_files)
    assert Store(env.quarantine).listdir("") == []
    assert len(Datalake(env.datalake).run_files("arome-0025", RUN)) == len(report.bad_files)


def test_quarantine_proven_bad_only_and_restore_good_files(tmp_path, s3_bucket, archive):
    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/r", archive)
    lake = Datalake(env.datalake, env.quarantine)
    files = lake.run_files("arome-0025", RUN)
    good, bad = files[0], files[1]
    clean = _extract(env)
    assert not clean.partial and clean.rows > 0
    stored = Bank(env.bank).read("weather_forecast")
    # a good file wrongly quarantined (as by the fileno bug) and a file whose bytes changed
    lake.quarantine(good, "UnsupportedOperation: fileno")
    data = bytearray(lake.store.read_bytes(bad))
    data[len(data) // 2] ^= 0xFF
    lake.store.write_bytes(bad, bytes(data))
    first = _extract(env)
    assert [u.rsplit("/", 1)[-1] for u in first.restored] == [good.rsplit("/", 1)[-1]]
    assert lake.exists(good) and not lake.quarantine_store.exists(good)
    assert not lake.quarantine_store.exists(f"{good}.reason")
    assert [u.rsplit("/", 1)[-1] for u in first.quarantined] == [bad.rsplit("/", 1)[-1]]
    assert "does not match the manifest" in lake.quarantine_store.read_bytes(
        f"{bad}.reason").decode()
    second = _extract(env)  # the corrupt one is tried again and stays where it is
    assert second.restored == [] and second.quarantined == [] and second.partial
    assert lake.quarantine_store.exists(bad) and not lake.exists(bad)
    # the corrupt file's cells keep the values the clean extraction stored
    pd.testing.assert_frame_equal(Bank(env.bank).read("weather_forecast"), stored)


# -- remote files are decoded while they arrive (issue 15) ----------------------------------------
@pytest.fixture
def spool_dir(tmp_path, monkeypatch) -> Path:
    """The folder of this process's temp files (spools), to find those still open."""
    import tempfile

    from aggregat.weather import decode_task

    folder = tmp_path / "spool"
    folder.mkdir()
    (folder / ".keep").touch()  # a fetch removes the temp folders it leaves empty
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    monkeypatch.setattr(decode_task, "_BLOCK", 4096)  # files of many reads
    return folder


def _leftovers(folder: Path) -> list[str]:
    """Spool files still open in this process (anonymous temp files show only in /proc), and
    transfer threads still running."""
    import threading

    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to see open files")
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(folder)):
            found.append(target)
    found += [name for name in os.listdir(folder) if name != ".keep"]
    return found + [t.name for t in threading.enumerate() if "spool" in t.name]


def test_a_remote_file_is_decoded_while_it_arrives(tmp_path, s3_bucket, archive, monkeypatch,
                                                   spool_dir):
    import threading

    from aggregat.weather import decode_task

    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/o", archive)
    decoding = threading.Event()
    real_header = decode_task.fast_header

    def header(*args, **kw):
        decoding.set()
        return real_header(*args, **kw)

    monkeypatch.setattr(decode_task, "fast_header", header)
    held = []

    def hold(pos):  # the rest of the first file waits until its first message is decoded
        if not held:
            held.append(decoding.wait(60))

    _serve_grib(monkeypatch, lambda path, data: _Source(data, hold))
    report = _extract(env)
    assert held == [True], "the first message was decoded only after the whole file arrived"
    assert not report.partial and report.rows > 0 and report.quarantined == []
    assert _leftovers(spool_dir) == []


def test_a_store_error_mid_transfer_quarantines_nothing_and_leaves_no_spool(
        tmp_path, s3_bucket, archive, monkeypatch, spool_dir):
    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/m", archive)
    files = Datalake(env.datalake).run_files("arome-0025", RUN)
    cut = files[len(files) // 2].rsplit("/", 1)[-1]

    def reset(pos):  # the connection drops in the middle of one file, while decoding it
        if pos >= 3 * 4096:
            raise ConnectionResetError("Connection reset by peer")

    _serve_grib(monkeypatch, lambda path, data: _Source(data, reset if path.endswith(cut)
                                                        else None))
    report = _extract(env)
    assert [os.path.basename(p) for p, _ in report.bad_files] == [cut]
    assert "ConnectionResetError" in report.bad_files[0][1]
    assert "left in place" in report.bad_files[0][1]
    assert report.quarantined == [] and report.corrupt == set()
    assert Store(env.quarantine).listdir("") == []
    assert _leftovers(spool_dir) == []


@pytest.mark.parametrize("error", [RuntimeError("a bug of ours"), KeyboardInterrupt()])
def test_the_spool_is_closed_when_decoding_raises(tmp_path, s3_bucket, archive, monkeypatch,
                                                   spool_dir, error):
    from aggregat.weather import decode_task

    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/d", archive)

    def broken(*args, **kw):
        raise error

    monkeypatch.setattr(decode_task, "_keep", broken)
    if isinstance(error, KeyboardInterrupt):  # Ctrl-C stops the extraction mid-file
        with pytest.raises(KeyboardInterrupt):
            _extract(env)
    else:
        report = _extract(env)
        assert report.bad_files and all("a bug of ours" in m for _, m in report.bad_files)
        assert report.quarantined == [] and report.corrupt == set()
    assert Store(env.quarantine).listdir("") == []
    assert _leftovers(spool_dir) == []


def test_botocore_does_not_check_again_what_our_hash_verifies(tmp_path, s3_bucket, archive,
                                                              monkeypatch):
    """A GRIB file's GET is hashed against the manifest by the spool: botocore's CRC32 of the
    whole object is not computed on top; other reads (the manifest) keep it."""
    from aiobotocore import httpchecksum

    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/c", archive)
    lake = Datalake(env.datalake)
    sizes = {lake.store.size(rel) for rel in lake.run_files("arome-0025", RUN)}
    checked: list[int] = []
    real_init = httpchecksum._ChecksumMixin._init_checksum

    def init_checksum(body, *args):
        checked.append(int(body._content_length or -1))
        return real_init(body, *args)

    monkeypatch.setattr(httpchecksum._ChecksumMixin, "_init_checksum", init_checksum)
    report = _extract(env)
    assert not report.partial and report.rows > 0
    assert checked, "botocore checked no response at all (the manifest's should be)"
    assert not sizes & set(checked), "a GRIB file was CRC-checked by botocore on top of our hash"


def test_a_remote_file_waits_in_memory_for_its_decoding_not_on_disk(tmp_path, s3_bucket, archive,
                                                                    monkeypatch, spool_dir):
    """The spool keeps a few blocks ahead of the message being decoded, in memory: no temp file,
    and a transfer faster than decoding waits for it (bounded memory per worker)."""
    import tempfile
    import threading

    from aggregat.weather import decode_task

    env = _fetched_env(tmp_path, f"s3://{s3_bucket}/b", archive)
    monkeypatch.setattr(tempfile, "TemporaryFile", None)  # any temp file fails the extraction
    ahead = threading.Event()
    holding: list[int] = []  # the length of the first message, while it waits
    real_header = decode_task.fast_header

    def header(message, path, index, offset):
        if index == 0 and offset == 0 and not ahead.is_set() and not holding:
            holding.append(len(message))  # the transfer runs ahead as far as it may
            ahead.wait(1.0)
            holding.append(-1)
        return real_header(message, path, index, offset)

    def watch(pos):  # the transfer asks for bytes far past the first message while it waits
        if len(holding) == 1 and pos > holding[0] + 8 * 4096:
            ahead.set()

    monkeypatch.setattr(decode_task, "fast_header", header)
    _serve_grib(monkeypatch, lambda path, data: _Source(data, watch))
    report = _extract(env)
    assert not report.partial and report.rows > 0, report.bad_files
    assert not ahead.is_set(), "the whole file was read ahead of its decoding"
    assert _leftovers(spool_dir) == []


# -- the run lock on s3, two processes claiming two hosts ----------------------------------------
HOLDER = """
import socket, sys, time
socket.gethostname = lambda: "host-a"
from aggregat.ops.lock import RunLock
RunLock(sys.argv[1], "prod", command="run daily", ttl_s=float(sys.argv[2]),
        heartbeat_s=0.5).acquire()
print("locked", flush=True)
time.sleep(120)
"""
CLI_AS_HOST_B = """
import socket, sys
socket.gethostname = lambda: "host-b"
from aggregat.cli.main import main
sys.argv = ["aggregat", *sys.argv[1:]]
main()
"""


def test_run_lock_across_hosts_on_s3(tmp_path, s3_bucket):
    root = f"s3://{s3_bucket}/lock"
    config = _config(tmp_path, {"prod": {"root": root,
                                         "energy_db": f"sqlite:///{tmp_path}/e.sqlite"}})
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, root, "3"], stdout=subprocess.PIPE,
                              text=True, env=child_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        out = subprocess.run([sys.executable, "-c", CLI_AS_HOST_B, "run", "daily", "--env",
                              "prod", "--config", str(config)], capture_output=True, text=True,
                             timeout=120, env=child_env(COLUMNS="200"), cwd=tmp_path)
        assert out.returncode == 75, out.stdout + out.stderr
        assert "on host-a" in out.stderr and "Traceback" not in out.stderr
        time.sleep(4)  # past the ttl: the holder's heartbeat keeps it alive
        with pytest.raises(LockedError):
            RunLock(root, "prod").acquire()
        os.kill(holder.pid, signal.SIGKILL)  # dies holding it: no release, no more heartbeat
        holder.wait(timeout=10)
        assert RunLock(root, "prod").holder()["host"] == "host-a"
        time.sleep(3.5)  # the ttl runs out
        with RunLock(root, "prod") as mine:
            assert mine.holder()["host"] == socket.gethostname()
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()


# -- GCS: the emulator ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gcs_bucket(monkeypatch_module):
    """A bucket on gcp-storage-emulator on loopback, reached through STORAGE_EMULATOR_HOST."""
    server_mod = pytest.importorskip("gcp_storage_emulator.server")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    name = "g-" + uuid.uuid4().hex[:10]
    server = server_mod.create_server("127.0.0.1", port, in_memory=True, default_bucket=name)
    server.start()
    monkeypatch_module.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{port}")
    # gcsfs asks the gRPC Storage Control API for the bucket type; the emulator has no gRPC.
    monkeypatch_module.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    try:
        yield name
    finally:
        server.stop()


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def test_gcs_bank_and_datalake_fetch_extract(tmp_path, gcs_bucket, archive):
    pytest.importorskip("gcsfs")
    root = f"gs://{gcs_bucket}/aggregat"
    bank = Bank(f"{root}/bank")
    frame = pd.DataFrame({"target_id": "t", "time": pd.date_range("2026-11-01", periods=3,
                                                                  freq="h", tz="UTC"),
                          "load_mw": [1.0, 2.0, 3.0],
                          "updated_at": pd.Timestamp("2026-11-02", tz="UTC")})
    bank.write_partition("load", {"target": "t", "month": "2026-11"}, frame)
    back = bank.read("load")
    assert back["load_mw"].tolist() == [1.0, 2.0, 3.0]
    env = _fetched_env(tmp_path, root, archive)
    report = _extract(env)
    assert not report.partial and report.rows > 0 and report.quarantined == []
    assert len(Bank(env.bank).read("weather_forecast")) == report.rows
