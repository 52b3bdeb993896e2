"""`weather fetch` against a real loopback HTTP server serving a generated archive."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import pytest
import urllib3
import xxhash
from archive_server import ArchiveServer, Failure, archive_rel, write_archive

from aggregat.errors import FetchError, PartialRunError
from aggregat.weather.datalake import Datalake
from aggregat.weather.fetch import FAILED, MISSING, SKIPPED, RetryPolicy, fetch_run
from aggregat.weather.products import get_product

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
N_FILES = 2 * len(PRODUCT.groups)  # SP1 + SP2


def rel_of(package: str, index: int, run: datetime = RUN) -> str:
    return archive_rel(PRODUCT, run, package, PRODUCT.groups[index])


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    return root, write_archive(root, PRODUCT, [RUN])


@pytest.fixture
def server(archive):
    with ArchiveServer(archive[0]) as srv:
        yield srv


@pytest.fixture
def lake(tmp_path):
    return Datalake(str(tmp_path / "lake"))


def fetch(server, lake, **kw):
    opts = dict(workers=4, retries=3, timeout_s=5, progress=False, backoff_s=0.001,
                backoff_max_s=0.005)
    opts.update(kw)
    return fetch_run(PRODUCT, RUN, lake, base_url=server.base_url, **opts)


def lake_rel(lake, arel: str) -> str:
    """Datalake path of the archive file ``arel``."""
    package, name = arel.split("/")[-2:]
    return f"{lake.run_prefix(PRODUCT, RUN)}/{package}/{name}"


def result_for(report, arel):
    name = arel.rsplit("/", 1)[-1]
    return next(f for f in report.files if f.name == name)


# -- the happy path --------------------------------------------------------------------------
def test_full_fetch_then_refetch_skips_without_any_get(server, archive, lake):
    _, data = archive
    report = fetch(server, lake)
    assert report.complete and report.downloaded == N_FILES
    assert report.bytes_downloaded == sum(len(b) for b in data.values())
    manifest = lake.read_manifest(PRODUCT, RUN)
    assert len(manifest["files"]) == N_FILES
    for arel, body in data.items():
        rel = lake_rel(lake, arel)
        assert lake.local_path(rel).read_bytes() == body
        entry = manifest["files"][lake.manifest_key(PRODUCT, RUN, rel)]
        assert entry["hash"] == f"xxh3_128:{xxhash.xxh3_128(body).hexdigest()}"
        assert "sha256" not in entry  # nothing needs it: the fast hash is the only one
        assert entry["size"] == len(body) and entry["url"].endswith(arel)
        assert datetime.fromisoformat(entry["fetched_at"]).tzinfo is not None
    assert len(lake.run_files(PRODUCT, RUN)) == N_FILES
    assert not list(lake.local_path().rglob("*.part"))

    gets = len(server.gets())
    again = fetch(server, lake)
    assert again.complete and all(f.status == SKIPPED for f in again.files)
    assert len(server.gets()) == gets  # no download at all


def test_refetch_replaces_a_file_that_no_longer_matches_its_manifest(server, archive, lake):
    _, data = archive
    fetch(server, lake)
    arel = rel_of("SP1", 2)
    path = lake.local_path(lake_rel(lake, arel))
    path.write_bytes(bytes(len(data[arel])))  # same size, other bytes: only the hash tells
    report = fetch(server, lake)
    assert result_for(report, arel).status == "downloaded"
    assert report.skipped == N_FILES - 1
    assert path.read_bytes() == data[arel]


def test_a_legacy_sha256_manifest_still_verifies_on_refetch(server, archive, lake):
    _, data = archive
    fetch(server, lake)
    manifest = lake.read_manifest(PRODUCT, RUN)
    for arel, body in data.items():  # as fetch wrote them before xxh3
        entry = manifest["files"][lake.manifest_key(PRODUCT, RUN, lake_rel(lake, arel))]
        del entry["hash"]
        entry["sha256"] = hashlib.sha256(body).hexdigest()
    lake.write_manifest(PRODUCT, RUN, manifest)
    arel = rel_of("SP2", 1)
    path = lake.local_path(lake_rel(lake, arel))
    path.write_bytes(bytes(len(data[arel])))
    report = fetch(server, lake)
    assert report.skipped == N_FILES - 1  # the legacy hashes match: no request for those
    assert result_for(report, arel).status == "downloaded"
    assert path.read_bytes() == data[arel]
    entry = lake.read_manifest(PRODUCT, RUN)["files"][lake.manifest_key(PRODUCT, RUN,
                                                                         lake_rel(lake, arel))]
    assert entry["hash"].startswith("xxh3_128:") and "sha256" not in entry


# -- missing and failing files ---------------------------------------------------------------
def test_missing_group_is_named_and_the_others_arrive(tmp_path, lake):
    gone = rel_of("SP2", 4)
    root = tmp_path / "partial"
    write_archive(root, PRODUCT, [RUN], skip=[gone])
    with ArchiveServer(root) as server:
        report = fetch(server, lake)
        assert len(server.gets(gone.rsplit("/", 1)[-1])) == 1  # a 404 is not retried
    assert report.missing == 1 and report.downloaded == N_FILES - 1
    assert result_for(report, gone).status == MISSING
    assert not report.complete
    with pytest.raises(PartialRunError, match=gone.rsplit("/", 1)[-1]) as info:
        report.raise_for_partial()
    assert info.value.exit_code == 3
    assert len(lake.run_files(PRODUCT, RUN)) == N_FILES - 1


def test_truncated_body_is_retried_and_resumed_with_range(server, archive, lake):
    _, data = archive
    arel = rel_of("SP1", 0)
    server.fail(arel, Failure(truncate_at=100, times=2))
    report = fetch(server, lake)
    res = result_for(report, arel)
    assert res.status == "downloaded" and res.attempts == 3
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]
    ranges = [r.range for r in server.gets(arel)]
    assert ranges == [None, "bytes=100-", "bytes=200-"]


def test_connection_reset_is_retried(server, archive, lake):
    _, data = archive
    arel = rel_of("SP2", 1)
    server.fail(arel, Failure(reset_at=50, times=1))
    report = fetch(server, lake)
    res = result_for(report, arel)
    assert report.complete and res.attempts == 2
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]


def test_server_errors_and_slow_responses_are_retried(server, archive, lake):
    _, data = archive
    busy, slow, timeout = rel_of("SP1", 3), rel_of("SP1", 4), rel_of("SP1", 5)
    server.fail(busy, Failure(status=503, times=2))
    server.fail(slow, Failure(delay_s=0.1))
    server.fail(timeout, Failure(delay_s=1.0, times=1))  # longer than the read timeout
    report = fetch(server, lake, timeout_s=0.4)
    assert report.complete, report.problems
    assert result_for(report, busy).attempts == 3
    assert result_for(report, slow).attempts == 1
    assert result_for(report, timeout).attempts == 2
    for arel in (busy, slow, timeout):
        assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]


def test_persistent_truncation_fails_by_name_and_leaves_no_final_file(server, lake):
    arel = rel_of("SP1", 6)
    server.fail(arel, Failure(truncate_at=100))
    report = fetch(server, lake, retries=2)
    res = result_for(report, arel)
    assert res.status == FAILED and res.attempts == 3
    assert "100" in res.error
    assert report.downloaded == N_FILES - 1
    final = lake.local_path(lake_rel(lake, arel))
    assert not final.exists()
    assert lake_rel(lake, arel) not in lake.run_files(PRODUCT, RUN)
    with pytest.raises(PartialRunError, match=res.name):
        report.raise_for_partial()


def test_resume_from_a_partial_file_left_by_an_earlier_fetch(server, archive, lake):
    _, data = archive
    arel = rel_of("SP2", 0)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[arel][:120])
    report = fetch(server, lake)
    res = result_for(report, arel)
    assert res.status == "downloaded" and res.attempts == 1
    assert [r.range for r in server.gets(arel)] == ["bytes=120-"]
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]
    assert not part.exists()


def test_server_ignoring_range_restarts_from_zero(server, archive, lake):
    _, data = archive
    arel = rel_of("SP2", 2)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[arel][:120])
    server.fail(arel, Failure(ignore_range=True))
    report = fetch(server, lake)
    assert result_for(report, arel).attempts == 1
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]


def test_stale_partial_file_is_detected_and_restarted(server, archive, lake):
    _, data = archive
    arel = rel_of("SP2", 3)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 120)  # not the start of this file: resuming gives bad framing
    report = fetch(server, lake)
    res = result_for(report, arel)
    assert res.status == "downloaded" and res.attempts == 2
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]


def test_a_failed_download_keeps_a_part_that_the_next_fetch_resumes(server, archive, lake):
    _, data = archive
    arel = rel_of("SP1", 7)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    server.fail(arel, Failure(truncate_at=100, times=3))
    assert result_for(fetch(server, lake, retries=2), arel).status == FAILED
    assert part.stat().st_size == 300  # three attempts, each resumed after the last
    report = fetch(server, lake)
    assert result_for(report, arel).status == "downloaded" and report.complete
    assert server.gets(arel)[-1].range == "bytes=300-"
    assert lake.local_path(lake_rel(lake, arel)).read_bytes() == data[arel]
    assert not part.exists()


@pytest.mark.parametrize("status", [404, 403])
def test_a_part_of_a_file_the_server_refuses_is_removed(server, archive, lake, status):
    _, data = archive
    arel = rel_of("SP2", 5)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    part.parent.mkdir(parents=True)
    part.write_bytes(data[arel][:120])  # left by a killed fetch
    server.fail(arel, Failure(status=status))
    report = fetch(server, lake)
    assert result_for(report, arel).status in (MISSING, FAILED)
    assert not part.exists()


def test_a_part_next_to_a_verified_file_is_removed_by_the_next_fetch(server, archive, lake):
    _, data = archive
    assert fetch(server, lake).complete
    arel = rel_of("SP1", 2)
    part = lake.local_path(lake_rel(lake, arel) + ".part")
    part.write_bytes(data[arel][:120])  # a second fetch killed while the first one completed
    report = fetch(server, lake)
    assert result_for(report, arel).status == SKIPPED and not server.gets(arel)[1:]
    assert not part.exists()


def test_corrupt_framing_is_rejected(tmp_path, lake):
    root = tmp_path / "corrupt"
    data = write_archive(root, PRODUCT, [RUN])
    arel = rel_of("SP1", 1)
    (root / arel).write_bytes(data[arel][:-4] + b"7770")
    with ArchiveServer(root) as server:
        report = fetch(server, lake)
        assert len(server.gets(arel)) == 2  # one fresh download to rule out transfer damage
    res = result_for(report, arel)
    assert res.status == FAILED and "7777" in res.error
    assert not lake.local_path(lake_rel(lake, arel)).exists()
    assert not lake.local_path(lake_rel(lake, arel) + ".part").exists()
    assert report.downloaded == N_FILES - 1


def test_memory_datalake(server, archive):
    _, data = archive
    lake = Datalake(f"memory://lake-{uuid.uuid4().hex}")
    arel = rel_of("SP1", 0)
    server.fail(arel, Failure(truncate_at=64, times=1))
    report = fetch(server, lake)
    assert report.complete and result_for(report, arel).attempts == 2
    files = lake.run_files(PRODUCT, RUN)
    assert len(files) == N_FILES
    assert lake.store.read_bytes(lake_rel(lake, arel)) == data[arel]
    gets = len(server.gets())
    assert fetch(server, lake).skipped == N_FILES
    assert len(server.gets()) == gets
    staging = Path(tempfile.gettempdir()) / "aggregat-fetch"
    assert not list(staging.rglob(f"*{lake.run_prefix(PRODUCT, RUN)}*"))


def test_local_write_error_fails_that_file_only(server, lake):
    arel = rel_of("SP2", 5)
    lake.local_path(lake_rel(lake, arel)).mkdir(parents=True)  # a folder in the file's place
    report = fetch(server, lake)
    res = result_for(report, arel)
    assert res.status == FAILED and res.error
    assert report.downloaded == N_FILES - 1


def test_fetch_a_simulated_archive(tmp_path, lake):
    simulate = pytest.importorskip("aggregat.weather.simulate")
    from aggregat.weather.datalake import message_offsets

    grid = PRODUCT.grid.crop(46.2, 46.0, 2.0, 2.2)
    steps = [g[0] for g in PRODUCT.groups]  # one step per time group: every file exists
    files = simulate.simulate_run(PRODUCT, RUN, tmp_path / "sim", grid=grid, steps=steps)
    assert len(files) == N_FILES
    with ArchiveServer(tmp_path / "sim") as server:
        server.fail(rel_of("SP1", 1), Failure(reset_at=500, times=1))
        report = fetch(server, lake)
    assert report.complete
    for path in files:
        arel = path.relative_to(tmp_path / "sim").as_posix()
        got = lake.local_path(lake_rel(lake, arel))
        assert got.read_bytes() == path.read_bytes()
        assert len(message_offsets(got)) >= 1


def test_retry_policy_is_bounded_with_jitter():
    policy = RetryPolicy(retries=10, backoff_s=1.0, backoff_max_s=8.0)
    delays = [policy.delay(a) for a in range(1, 11)]
    assert all(0.5 <= d <= 1.0 for d in delays[:1])
    assert max(delays) <= 8.0 and delays[-1] >= 4.0
    assert len({round(policy.delay(3), 6) for _ in range(20)}) > 1
    assert policy.delay(1, retry_after=5.0) == 5.0


class _CountingHTTP(urllib3.PoolManager):
    """A pool counting the requests it was asked for (to bound attempts on an unreachable host)."""

    def __init__(self) -> None:
        super().__init__(retries=False)
        self.count = 0

    def request(self, *args, **kwargs):
        self.count += 1
        return super().request(*args, **kwargs)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("host", ["closed-port", "no-such-host.invalid"])
def test_unreachable_host_is_one_error_after_a_few_attempts(lake, host):
    host = f"127.0.0.1:{_closed_port()}" if host == "closed-port" else host
    http = _CountingHTTP()
    t0 = time.monotonic()
    # Default retries and backoff: 5 retries per file would be 6 x 18 connections and ~15 s.
    with pytest.raises(FetchError, match=re.escape(f"cannot reach {host}")):
        fetch_run(PRODUCT, RUN, lake, base_url=f"http://{host}/pnt", workers=4, progress=False,
                  http=http)
    assert http.count <= 4  # the first attempt of each worker, then the host is given up
    assert time.monotonic() - t0 < 5


# -- CLI ---------------------------------------------------------------------------------------
@pytest.fixture
def cli_env(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGAT_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    monkeypatch.delenv("AGGREGAT_CONFIG", raising=False)
    return tmp_path / "home"


def run_cli(monkeypatch, *args: str) -> int:
    from aggregat.cli.main import main

    monkeypatch.setattr(sys, "argv", ["aggregat", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    return 0


def test_cli_fetch_run_and_partial_exit_code(tmp_path, cli_env, monkeypatch, capsys):
    gone = rel_of("SP1", 8)
    root = tmp_path / "cli-archive"
    write_archive(root, PRODUCT, [RUN], skip=[gone])
    with ArchiveServer(root) as server:
        code = run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025",
                       "--run", "2026-11-28T00", "--packages", "SP1,SP2",
                       "--base-url", server.base_url, "--retries", "0")
    out = capsys.readouterr()
    assert code == 3
    name = gone.rsplit("/", 1)[-1]
    assert "PARTIAL" in out.out and "missing" in out.out
    assert name in out.err.replace("\n", "")
    lake = Datalake(str(cli_env / "datalake"))
    assert len(lake.run_files(PRODUCT, RUN)) == N_FILES - 1


def test_cli_fetch_latest_with_config_file(tmp_path, cli_env, monkeypatch, capsys):
    root = tmp_path / "cli-archive"
    write_archive(root, PRODUCT, [RUN], packages=["SP1"])
    with ArchiveServer(root) as server:
        (tmp_path / "aggregat.toml").write_text(
            'default_env = "t"\n[env.t]\nroot = "home"\n'
            f'[env.t.weather]\nbase_url = "{server.base_url}"\nmin_run_age_h = 0.0\n'
            'packages = { "arome-0025" = ["SP1"] }\n'
        )
        monkeypatch.setattr("aggregat.weather.availability.datetime", _FrozenDatetime)
        code = run_cli(monkeypatch, "weather", "fetch", "--model", "arome", "--latest")
    out = capsys.readouterr().out
    assert code == 0, out
    assert "2026-11-28T00:00:00Z" in out and "complete" in out
    lake = Datalake(str(tmp_path / "home" / "datalake"))
    assert len(lake.run_files(PRODUCT, RUN)) == len(PRODUCT.groups)
    manifest = json.loads((tmp_path / "home" / "datalake" / lake.manifest_rel(PRODUCT, RUN))
                          .read_text())
    assert set(k.split("/")[0] for k in manifest["files"]) == {"SP1"}


def test_cli_fetch_needs_run_or_latest(cli_env, monkeypatch, capsys):
    assert run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025") == 2
    assert "--latest" in capsys.readouterr().err
    assert run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025",
                   "--run", "2026-11-28T01") == 2
    assert "no run at" in capsys.readouterr().err


class _FrozenDatetime(datetime):
    """``datetime.now()`` pinned to one hour after RUN (for --latest through the CLI)."""

    @classmethod
    def now(cls, tz=None):
        return datetime(2026, 11, 28, 1, 30, tzinfo=UTC).astimezone(tz)

