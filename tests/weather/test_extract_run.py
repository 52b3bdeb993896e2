"""A simulated Météo-France run, fetched over loopback HTTP, extracted into the bank."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from archive_server import ArchiveServer

from aggregat.bank import Bank, read_weather
from aggregat.weather.datalake import Datalake
from aggregat.weather.extract import extract_run
from aggregat.weather.fetch import fetch_run
from aggregat.weather.products import PARAMETERS, get_product
from aggregat.weather.simulate import PointDriver, crop_for_points, simulate_run
from aggregat.weather.sites import Locations
from child_process import child_env

RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
PRODUCT = get_product("arome-0025")
STEPS = PRODUCT.steps  # a complete run: all 9 time groups
END = RUN + timedelta(hours=52)
IDS = ["paris", "versailles", "meaux", "chartres"]
LATS = np.array([48.85, 48.80, 48.96, 48.45])
LONS = np.array([2.35, 2.13, 2.88, 1.49])


@pytest.fixture(scope="module")
def archive(tmp_path_factory, driver_points) -> dict:
    """A driven run (the first three sites follow ``driver_points``) served over loopback HTTP."""
    root = tmp_path_factory.mktemp("archive")
    grid = crop_for_points(PRODUCT, LATS, LONS, margin_deg=0.3)
    frames = {k: v.reindex(pd.date_range(RUN, periods=len(STEPS), freq="h")).ffill()
              for k, v in driver_points["frames"].items()}
    driver = PointDriver(driver_points["lats"], driver_points["lons"], driver_points["ids"], frames)
    files = simulate_run(PRODUCT, RUN, root, grid=grid, steps=STEPS, seed=3, driver=driver)
    with ArchiveServer(root) as server:
        yield {"root": root, "files": files, "server": server, "driver": driver_points,
               "frames": frames}


def _fetched(archive, tmp_path) -> Datalake:
    datalake = Datalake(str(tmp_path / "datalake"))
    report = fetch_run(PRODUCT, RUN, datalake, base_url=archive["server"].base_url,
                       packages=["SP1", "SP2"], progress=False, workers=4)
    report.raise_for_partial()  # the simulated run is complete
    return datalake


def _locations(driver_points) -> Locations:
    return Locations.points(driver_points["ids"] + ["chartres"],
                            list(driver_points["lats"]) + [48.45],
                            list(driver_points["lons"]) + [1.49])


def _nearest_reference(files, grib_reader, locations) -> dict[tuple[str, int], np.ndarray]:
    grid = crop_for_points(PRODUCT, LATS, LONS, margin_deg=0.3)
    i = np.round((locations.lons - grid.lon_first) / grid.dlon).astype(int)
    j = np.round((grid.lat_first - locations.lats) / grid.dlat).astype(int)
    by_key = {p.key: p.name for p in PARAMETERS.values()}
    out = {}
    for path in files:
        for msg in grib_reader(path):
            stat = msg.get("typeOfStatisticalProcessing", -1) \
                if msg["productDefinitionTemplateNumber"] == 8 else -1
            key = (msg["discipline"], msg["parameterCategory"], msg["parameterNumber"],
                   msg["typeOfFirstFixedSurface"], msg["level"], stat)
            out[(by_key[key], msg["endStep"])] = msg["values"][j * msg["Ni"] + i]
    return out


@pytest.mark.parametrize("workers", [1, 2])
def test_extracted_values_equal_eccodes_at_nearest_points(archive, tmp_path, grib_reader,
                                                          workers):
    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    locations = _locations(archive["driver"])
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                         workers=workers)
    assert not report.partial and report.rows == len(STEPS) * len(locations)
    frame = read_weather(bank, RUN, END, models=[PRODUCT.id])
    assert len(frame) == report.rows
    reference = _nearest_reference(archive["files"], grib_reader, locations)
    checked = 0
    for (name, step), values in reference.items():
        param = PARAMETERS[name]
        if param.accumulated_from_start or name not in ("t2m", "rh2m", "u10", "v10", "msl",
                                                        "gust10", "lcc", "mcc", "hcc", "tcc"):
            continue
        got = frame[frame.step_h == step].set_index("location").loc[locations.ids, param.column]
        expected = (values * param.scale + param.offset).astype(np.float32)
        np.testing.assert_allclose(got.to_numpy(), expected, rtol=1e-6, atol=1e-4)
        checked += 1
    assert checked >= 10 * (len(STEPS) - 1)


def test_accumulations_give_back_the_driven_hourly_values(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    extract_run(PRODUCT, RUN, datalake=datalake, bank=bank,
                locations=_locations(archive["driver"]), workers=1)
    frame = read_weather(bank, RUN, END).set_index(["valid_time", "location"])
    for name, column, tol in (("ssrd", "ssrd_wm2", 2.0), ("tp", "tp_mm", 0.01),
                              ("t2m", "t2m_c", 0.01)):
        driven = archive["frames"][name]
        for step in range(1, len(STEPS)):  # ssrd/tp start at step 1 (7 and 13 across files)
            valid = pd.Timestamp(RUN + timedelta(hours=step))
            for site in archive["driver"]["ids"]:
                want = driven.loc[valid, site]
                if np.isnan(want):
                    continue
                assert frame.loc[(valid, site), column] == pytest.approx(want, abs=tol), \
                    (name, step, site)
    assert (frame["tp_mm"].dropna() >= 0).all() and (frame["ssrd_wm2"].dropna() >= 0).all()
    assert frame["wind_speed_10m_ms"].notna().all()


def test_reextracting_replaces_never_duplicates(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    locations = _locations(archive["driver"])
    first = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations, workers=1)
    before = read_weather(bank, RUN, END)
    second = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                         workers=2)
    after = read_weather(bank, RUN, END)
    assert first.partition == second.partition
    assert len(after) == len(before) == first.rows
    pd.testing.assert_frame_equal(before.reset_index(drop=True), after.reset_index(drop=True))


def test_corrupt_file_is_quarantined_and_the_run_completes(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    victim = next(r for r in datalake.run_files(PRODUCT, RUN) if "SP1" in r and "07H12H" in r)
    path = datalake.local_path(victim)
    data = bytearray(path.read_bytes())
    second = data.index(b"GRIB", 4)
    data[second:second + 4] = b"\0\0\0\0"  # same size as the manifest says, broken inside
    path.write_bytes(bytes(data))
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank,
                         locations=_locations(archive["driver"]), workers=2)
    assert report.partial
    assert any("07H12H" in f and "corrupt" in e for f, e in report.bad_files)
    assert report.quarantined and not path.exists()
    assert (tmp_path / "datalake" / "quarantine").exists()
    frame = read_weather(bank, RUN, END)
    sp1_late = frame[frame.step_h == 13]["t2m_c"]
    assert sp1_late.notna().all()  # other files still arrived
    assert frame[frame.step_h == 8]["t2m_c"].isna().all()  # the bad file's steps are missing


def test_missing_group_is_reported_against_the_catalogue(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    victim = next(r for r in datalake.run_files(PRODUCT, RUN) if "SP2" in r and "13H18H" in r)
    datalake.local_path(victim).unlink()
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=1)
    assert report.partial
    assert report.missing_files == [victim.rsplit("/", 1)[-1]]
    assert report.issues == []  # the files present hold what the catalogue expects


def test_bitmap_missing_points_stay_missing(tmp_path):
    # The simulator cuts the corners of the AROME domain (bitmap): a site there gets NaN.
    grid = PRODUCT.grid.crop(55.4, 51.0, -12.0, -5.0)
    root = tmp_path / "corner"
    files = simulate_run(PRODUCT, RUN, root, grid=grid, steps=(0, 1), packages=["SP1"])
    from aggregat.weather.extract import extract_files

    sites = Locations.points(["corner", "inside"], [55.35, 51.1], [-11.95, -5.1])
    frame, report = extract_files([str(f) for f in files], sites, workers=1)
    corner = frame[frame.location == "corner"]
    assert corner["t2m_c"].isna().all() and corner["tp_mm"].isna().all()
    assert frame[frame.location == "inside"]["t2m_c"].notna().all()
    assert report.missing_values > 0


def test_same_result_on_a_dask_cluster(archive, tmp_path):
    distributed = pytest.importorskip("distributed")
    datalake = _fetched(archive, tmp_path)
    locations = _locations(archive["driver"])
    local = Bank(str(tmp_path / "local"))
    extract_run(PRODUCT, RUN, datalake=datalake, bank=local, locations=locations, workers=1)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=":0") as cluster:  # no 8787 clash
        on_dask = Bank(str(tmp_path / "dask"))
        report = extract_run(PRODUCT, RUN, datalake=datalake, bank=on_dask, locations=locations,
                             scheduler=cluster.scheduler_address)
    assert not report.partial
    a = read_weather(local, RUN, END)
    b = read_weather(on_dask, RUN, END)
    pd.testing.assert_frame_equal(a.reset_index(drop=True), b.reset_index(drop=True))


def _test_env(archive, tmp_path) -> dict[str, str]:
    """Env ``test`` in ``tmp_path`` (the sites, the loopback archive); a child's environment."""
    sites = tmp_path / "sites.csv"
    sites.write_text("id,name,lat,lon\n" + "\n".join(
        f"{i},{i},{la},{lo}" for i, la, lo in zip(IDS, LATS, LONS, strict=True)) + "\n")
    (tmp_path / "aggregat.toml").write_text(
        f'[env.test]\nroot = "data"\nsites = "sites.csv"\n'
        f'[env.test.weather]\nbase_url = "{archive["server"].base_url}"\n')
    return child_env(AGGREGAT_ENV="test")


def test_cli_fetch_and_extract_in_a_real_process(archive, tmp_path):
    env = _test_env(archive, tmp_path)
    cmd = [sys.executable, "-m", "aggregat.cli.main", "weather"]
    fetch = subprocess.run(cmd + ["fetch", "--model", "arome-0025", "--run", "2026-11-28T00",
                                  "--packages", "SP1"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert fetch.returncode == 0, fetch.stderr
    extract = subprocess.run(cmd + ["extract", "--model", "arome-0025", "--latest"], cwd=tmp_path,
                             env=env, capture_output=True, text=True)
    assert extract.returncode == 0, extract.stderr
    assert "ok" in extract.stdout and "rows" in extract.stdout
    frame = read_weather(Bank(str(tmp_path / "data" / "bank")), RUN, END)
    assert sorted(frame["location"].unique()) == sorted(IDS)
    assert Path(tmp_path / "data" / "datalake" / "arome-0025").is_dir()


# -- integrity and quarantine (audit findings 1, 2, 9a) --------------------------------------------
def _victim(datalake: Datalake, package: str, group: str) -> str:
    return next(r for r in datalake.run_files(PRODUCT, RUN) if package in r and group in r)


def _flip_data_bytes(path: Path) -> None:
    """Change bytes inside the data section of the second message: same size, framing intact."""
    from aggregat.weather.datalake import message_offsets

    data = bytearray(path.read_bytes())
    offsets = message_offsets(path) + [len(data)]
    at = offsets[1] + (offsets[2] - offsets[1]) * 2 // 3
    for k in range(at, at + 6):
        data[k] ^= 0x55
    path.write_bytes(bytes(data))


def _legacy_manifest(datalake: Datalake) -> None:
    """Rewrite the run's manifest as fetch wrote it before xxh3: ``"sha256": hex``."""
    import hashlib

    manifest = datalake.read_manifest(PRODUCT, RUN)
    prefix = datalake.run_prefix(PRODUCT, RUN)
    for key, entry in manifest["files"].items():
        del entry["hash"]
        data = datalake.local_path(f"{prefix}/{key}").read_bytes()
        entry["sha256"] = hashlib.sha256(data).hexdigest()
    datalake.write_manifest(PRODUCT, RUN, manifest)


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_same_size_corruption_fails_the_hash_and_is_quarantined(archive, tmp_path, algorithm):
    datalake = _fetched(archive, tmp_path)
    if algorithm == "sha256":
        _legacy_manifest(datalake)
    victim = _victim(datalake, "SP1", "07H12H")
    path = datalake.local_path(victim)
    size = path.stat().st_size
    _flip_data_bytes(path)
    assert path.stat().st_size == size  # the size check alone cannot see it
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=2)
    assert report.partial
    assert [os.path.basename(f) for f, _ in report.bad_files] == [path.name]
    assert f"{algorithm} does not match the manifest" in report.bad_files[0][1]
    moved = tmp_path / "datalake" / "quarantine" / victim
    assert not path.exists() and moved.exists()
    assert algorithm in Path(f"{moved}.reason").read_text()
    frame = read_weather(Bank(str(tmp_path / "bank")), RUN, END)
    assert frame[frame.step_h.between(7, 12)]["t2m_c"].isna().all()  # no value from that file


def test_a_legacy_sha256_manifest_still_verifies(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    _legacy_manifest(datalake)
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=2)
    assert not report.partial and report.bad_files == [] and report.unverified == []
    assert report.rows > 0 and report.quarantined == []


def test_every_file_proven_bad_is_quarantined_with_its_reason(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    resized = _victim(datalake, "SP1", "00H06H")  # the manifest says another size
    manifest = datalake.read_manifest(PRODUCT, RUN)
    manifest["files"][datalake.manifest_key(PRODUCT, RUN, resized)]["size"] += 1
    datalake.write_manifest(PRODUCT, RUN, manifest)
    truncated = _victim(datalake, "SP1", "13H18H")
    data = datalake.local_path(truncated).read_bytes()
    datalake.local_path(truncated).write_bytes(data[:-100])
    flipped = _victim(datalake, "SP2", "07H12H")
    _flip_data_bytes(datalake.local_path(flipped))
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=2)
    assert report.missing_files == []  # bad, not missing
    names = {rel.rsplit("/", 1)[-1] for rel in (resized, truncated, flipped)}
    assert {os.path.basename(f) for f, _ in report.bad_files} == names
    assert len(report.quarantined) == 3
    for rel in (resized, truncated, flipped):
        assert not datalake.local_path(rel).exists()
        assert (tmp_path / "datalake" / "quarantine" / f"{rel}.reason").read_text().strip()


def test_a_failure_that_is_not_about_the_file_does_not_quarantine(archive, tmp_path,
                                                                  monkeypatch):
    from aggregat.weather import decode_task

    datalake = _fetched(archive, tmp_path)

    def broken(header, task):  # our own bug, in the worker (workers=1 runs in this process)
        raise RuntimeError("a bug of ours")

    monkeypatch.setattr(decode_task, "_sampler", broken)
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=1)
    assert report.partial and report.bad_files
    assert all("RuntimeError" in e for _, e in report.bad_files)
    assert report.quarantined == []
    assert len(datalake.run_files(PRODUCT, RUN)) == len(archive["files"])


def test_unlisted_file_is_unverified_and_out_of_bounds_values_make_a_file_bad(archive, tmp_path,
                                                                           grib_reader):
    import eccodes

    datalake = _fetched(archive, tmp_path)
    listed_by_hand = _victim(datalake, "SP2", "00H06H")
    hot = _victim(datalake, "SP1", "07H12H")
    manifest = datalake.read_manifest(PRODUCT, RUN)
    for rel in (listed_by_hand, hot):
        del manifest["files"][datalake.manifest_key(PRODUCT, RUN, rel)]
    datalake.write_manifest(PRODUCT, RUN, manifest)
    path = datalake.local_path(hot)
    out = bytearray()
    with open(path, "rb") as fh:  # t2m 300 K too warm, re-encoded: a valid GRIB, wrong values
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            if eccodes.codes_get_long(h, "parameterCategory") == 0 and \
                    eccodes.codes_get_long(h, "level") == 2:
                eccodes.codes_set_values(h, eccodes.codes_get_values(h) + 300.0)
            out += eccodes.codes_get_message(h)
            eccodes.codes_release(h)
    path.write_bytes(bytes(out))
    report = extract_run(PRODUCT, RUN, datalake=datalake, bank=Bank(str(tmp_path / "bank")),
                         locations=_locations(archive["driver"]), workers=2)
    assert sorted(report.unverified) == sorted(r.rsplit("/", 1)[-1] for r in (listed_by_hand, hot))
    assert [os.path.basename(f) for f, _ in report.bad_files] == [path.name]
    assert "physical bounds" in report.bad_files[0][1]
    assert report.quarantined and not path.exists()
    frame = read_weather(Bank(str(tmp_path / "bank")), RUN, END)
    assert frame[frame.step_h.between(0, 6)]["lcc_pct"].notna().all()  # unverified, but used


def test_reextracting_with_bad_or_missing_files_keeps_the_stored_values(archive, tmp_path):
    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    locations = _locations(archive["driver"])
    first = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                        workers=2)
    assert not first.partial
    before = read_weather(bank, RUN, END).set_index(["step_h", "location"]).sort_index()
    corrupt = _victim(datalake, "SP1", "07H12H")
    _flip_data_bytes(datalake.local_path(corrupt))
    gone = _victim(datalake, "SP2", "13H18H")
    datalake.local_path(gone).unlink()
    second = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                         workers=2)
    assert second.partial
    kept = dict(second.kept)
    assert kept[corrupt.rsplit("/", 1)[-1]] > 0 and kept[gone.rsplit("/", 1)[-1]] > 0
    after = read_weather(bank, RUN, END).set_index(["step_h", "location"]).sort_index()
    assert len(after) == len(before)
    pd.testing.assert_frame_equal(before, after)  # nothing lost, nothing changed


def test_a_chunk_the_dask_cluster_lost_leaves_its_file_and_the_stored_values(archive, tmp_path,
                                                                             monkeypatch):
    """A task whose workers kept dying (a ClusterError from run_tasks) is not the file's fault:
    the run is partial, the file stays in the datalake, its cells keep their stored values and
    the other files' are written."""
    from aggregat.errors import ClusterError
    from aggregat.weather import extract

    datalake = _fetched(archive, tmp_path)
    bank = Bank(str(tmp_path / "bank"))
    locations = _locations(archive["driver"])
    assert not extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                           workers=2).partial
    before = read_weather(bank, RUN, END).set_index(["step_h", "location"]).sort_index()
    victim = _victim(datalake, "SP1", "07H12H")
    real = extract.run_tasks

    def losing(fn, tasks, **kwargs):
        for task, result, error in real(fn, tasks, **kwargs):
            if task.path.endswith(victim.rsplit("/", 1)[-1]):
                result, error = None, ClusterError("the Dask cluster at tcp://x:8786: the "
                                                   "workers running this task died 4 times")
            yield task, result, error

    monkeypatch.setattr(extract, "run_tasks", losing)
    second = extract_run(PRODUCT, RUN, datalake=datalake, bank=bank, locations=locations,
                         workers=2)
    assert second.partial and second.quarantined == []
    [(path, error)] = second.bad_files
    assert path.endswith(victim.rsplit("/", 1)[-1]) and "died 4 times" in error
    assert "left in place" in error
    assert datalake.local_path(victim).is_file()
    assert dict(second.kept)[victim.rsplit("/", 1)[-1]] > 0
    after = read_weather(bank, RUN, END).set_index(["step_h", "location"]).sort_index()
    pd.testing.assert_frame_equal(before, after)


def test_quarantine_is_the_environment_setting(archive, tmp_path):
    env = _test_env(archive, tmp_path)
    cli = [sys.executable, "-m", "aggregat.cli.main"]
    shown = subprocess.run(cli + ["env", "show"], cwd=tmp_path, env=env, capture_output=True,
                           text=True)
    assert shown.returncode == 0, shown.stderr
    quarantine = tmp_path / "data" / "quarantine"
    assert str(quarantine) in shown.stdout
    fetch = subprocess.run(cli + ["weather", "fetch", "--model", "arome-0025", "--run",
                                  "2026-11-28T00", "--packages", "SP1"], cwd=tmp_path, env=env,
                           capture_output=True, text=True)
    assert fetch.returncode == 0, fetch.stderr
    datalake = Datalake(str(tmp_path / "data" / "datalake"))
    victim = _victim(datalake, "SP1", "07H12H")
    _flip_data_bytes(datalake.local_path(victim))
    extract = subprocess.run(cli + ["weather", "extract", "--model", "arome-0025", "--latest"],
                             cwd=tmp_path, env=env, capture_output=True, text=True)
    assert extract.returncode == 3, extract.stderr
    assert (quarantine / victim).exists() and (quarantine / f"{victim}.reason").exists()
    assert not (tmp_path / "data" / "datalake" / "quarantine").exists()
def test_extraction_workers_die_with_a_sigkilled_parent(archive, tmp_path):
    import os
    import signal
    import time

    import psutil

    datalake = _fetched(archive, tmp_path)
    # A real extraction whose tasks take long, so the workers are busy when the parent dies.
    child = (
        "import sys, time\n"
        "from datetime import datetime, UTC\n"
        "import aggregat.weather.extract as ex\n"
        "from aggregat.bank import Bank\n"
        "from aggregat.weather.datalake import Datalake\n"
        "from aggregat.weather.decode_task import run_task\n"
        "from aggregat.weather.sites import Locations\n"
        "def slow(task):\n"
        "    time.sleep(120)\n"
        "    return run_task(task)\n"
        "ex.run_task = slow\n"
        "ex.extract_run('arome-0025', datetime(2026, 11, 28, 0, tzinfo=UTC),\n"
        "               datalake=Datalake(sys.argv[1]), bank=Bank(sys.argv[2]),\n"
        "               locations=Locations.points(['p'], [48.85], [2.35]), workers=2)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", child, datalake.url, str(tmp_path / "bank")],
                            env=child_env())
    workers: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + 90
        while len(workers) < 2 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            workers = psutil.Process(proc.pid).children(recursive=True)
        assert len(workers) >= 2, "the extraction did not start its worker processes"
        time.sleep(0.5)  # the workers are inside their (slow) tasks
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        _, alive = psutil.wait_procs(workers, timeout=5)
        alive = [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]
        assert alive == [], f"workers outlived their parent: {alive}"
    finally:
        proc.kill()
        for worker in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                worker.kill()
