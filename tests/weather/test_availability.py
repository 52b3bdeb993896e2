"""`weather availability` and the newest complete run, against a real loopback HTTP server."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest
from archive_server import ArchiveServer, Failure, archive_rel, write_archive

import aggregat
from aggregat.errors import FetchError
from aggregat.weather.availability import availability, newest_complete_run
from aggregat.weather.products import get_product
from aggregat.weather.sources import INCOMPLETE, MISSING, PRESENT, OpenDataSource
from child_process import child_env

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
LAST, MIDDLE = PRODUCT.group_label(PRODUCT.groups[-1]), PRODUCT.group_label(PRODUCT.groups[4])


def rel_of(package: str, index: int, run: datetime = RUN) -> str:
    return archive_rel(PRODUCT, run, package, PRODUCT.groups[index])


def source(server) -> OpenDataSource:
    return OpenDataSource("open-data", server.base_url)


def test_matrix_says_present_missing_and_incomplete_per_file(tmp_path):
    root = tmp_path / "archive"
    prev, newest = RUN - timedelta(hours=3), RUN + timedelta(hours=3)
    write_archive(root, PRODUCT, [prev, RUN])
    # The newest run is being published: its last two groups of SP2 are not there yet.
    data = write_archive(root, PRODUCT, [newest], skip=[rel_of("SP2", -1, newest),
                                                       rel_of("SP2", -2, newest)])
    # In RUN: one file cut short (still being written), one empty, one not GRIB at all.
    cut = root / rel_of("SP1", 4)
    cut.write_bytes(cut.read_bytes()[:-10])
    (root / rel_of("SP1", 5)).write_bytes(b"")
    (root / rel_of("SP1", 6)).write_bytes(b"<html>not here</html>")
    with ArchiveServer(root) as server:
        report = availability(PRODUCT, [source(server)], ["SP1", "SP2"],
                              since=prev, now=newest + timedelta(minutes=30), workers=4)
        # Probes never download a file: every GET asks for a few bytes.
        assert all(r.method == "GET" and r.range for r in server.requests)
    assert [r.run for r in report.runs] == [newest, RUN, prev]
    by_run = {r.run: r for r in report.runs}
    newest_sp2 = by_run[newest].files["open-data"]["SP2"]
    assert newest_sp2[LAST] == MISSING and newest_sp2[MIDDLE] == PRESENT
    assert by_run[newest].state == "incomplete" and not by_run[newest].complete
    sp1 = by_run[RUN].files["open-data"]["SP1"]
    labels = [PRODUCT.group_label(g) for g in PRODUCT.groups]
    assert [sp1[g] for g in labels[4:7]] == [INCOMPLETE] * 3
    assert sp1[labels[0]] == PRESENT and by_run[RUN].counts("open-data", "SP1") == {
        PRESENT: len(labels) - 3, INCOMPLETE: 3}
    assert by_run[RUN].state == "incomplete"
    assert by_run[prev].complete and by_run[prev].complete_at() == ["open-data"]
    assert report.newest_complete == prev
    assert len(data) == 2 * len(labels) - 2


def test_a_run_with_no_file_is_missing_and_a_dead_source_is_an_error(tmp_path):
    root = tmp_path / "archive"
    write_archive(root, PRODUCT, [RUN], packages=["SP1"])
    with ArchiveServer(root) as server:
        server.fail(rel_of("SP1", 0), Failure(status=503))
        report = availability(PRODUCT, [source(server)], ["SP1"],
                              since=RUN - timedelta(hours=3), now=RUN + timedelta(hours=1))
    states = {r.run: r.state for r in report.runs}
    assert states == {RUN: "incomplete", RUN - timedelta(hours=3): "missing"}
    assert report.runs[-1].files["open-data"]["SP1"][LAST] == MISSING
    assert report.runs[0].files["open-data"]["SP1"][PRODUCT.group_label(PRODUCT.groups[0])] \
        == "error"
    with pytest.raises(FetchError, match="cannot probe"):
        newest_complete_run(PRODUCT, [OpenDataSource("open-data", "http://127.0.0.1:9/pnt")],
                            ["SP1"], RUN, RUN - timedelta(hours=6))


def test_a_rate_limited_source_is_waited_for_not_given_up(tmp_path):
    """The first probes all get 429 with Retry-After: every probe of the source waits it out
    (not only the ones that got it), and the source is not taken for dead."""
    root = tmp_path / "archive"
    write_archive(root, PRODUCT, [RUN], packages=["SP1"])
    with ArchiveServer(root) as server:
        for k in range(4):  # the first four files, probed first by the four workers
            server.fail(rel_of("SP1", k), Failure(status=429, retry_after="1", times=1))
        report = availability(PRODUCT, [source(server)], ["SP1"], since=RUN,
                              now=RUN + timedelta(minutes=30), workers=4)
        gets = server.gets()
    files = report.runs[0].files["open-data"]["SP1"]
    assert set(files.values()) == {PRESENT} and report.newest_complete == RUN
    limited = [r for r in gets if r.status == 429]
    assert len(limited) == 4
    last_429 = max(r.at for r in limited)
    # No probe left between the first 429 and its Retry-After (1 s; the server's stamps jitter).
    after = [r for r in gets if r.status != 429 and r.at > min(r.at for r in limited)]
    assert after and all(r.at - min(x.at for x in limited) >= 0.95 for r in after), \
        [(r.path, round(r.at - last_429, 3)) for r in after[:5]]


def test_newest_complete_run_walks_back_and_prefers_the_datalake(tmp_path):
    prev, newest = RUN - timedelta(hours=3), RUN + timedelta(hours=3)
    root = tmp_path / "multi"
    write_archive(root, PRODUCT, [prev, RUN])
    write_archive(root, PRODUCT, [newest], skip=[rel_of("SP2", 4, newest)])
    with ArchiveServer(root) as server:
        src = [source(server)]
        found = newest_complete_run(PRODUCT, src, ["SP1", "SP2"], newest, newest - timedelta(
            hours=48))
        assert found.run == RUN and found.complete
        # Only SP1 wanted: the newest run is complete for it.
        assert newest_complete_run(PRODUCT, src, ["SP1"], newest, prev).run == newest
        # Nothing in the window.
        assert newest_complete_run(PRODUCT, src, ["SP1"], prev - timedelta(hours=1),
                                   prev - timedelta(hours=12)) is None
        # A run complete in the datalake is taken without asking the server.
        server.requests.clear()
        held = newest_complete_run(PRODUCT, src, ["SP1"], newest, prev,
                                   have=lambda run: run == newest)
        assert held.run == newest and held.in_datalake and not server.requests


# -- the command ------------------------------------------------------------------------------
def _cli(tmp_path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "weather", *args],
                          capture_output=True, text=True, timeout=120,
                          env=child_env(COLUMNS="160"), cwd=tmp_path)


@pytest.fixture
def recent(tmp_path):
    """A server with the two newest AROME runs older than 3 h (the second lacks its last SP1)."""
    now = datetime.now(UTC)
    hour = (now - timedelta(hours=3)).replace(minute=0, second=0, microsecond=0)
    newest = hour - timedelta(hours=hour.hour % 3)
    older = newest - timedelta(hours=3)
    root = tmp_path / "archive"
    write_archive(root, PRODUCT, [older], packages=["SP1"], messages=1)
    write_archive(root, PRODUCT, [newest], packages=["SP1"], messages=1,
                  skip=[rel_of("SP1", -1, newest)])
    with ArchiveServer(root) as server:
        (tmp_path / "aggregat.toml").write_text(
            f'[env.local.weather]\nbase_url = "{server.base_url}"\n')
        yield server, newest, older


def test_cli_json_shape_and_table(tmp_path, recent):
    server, newest, older = recent
    since = (older - timedelta(hours=older.hour)).date().isoformat()
    done = _cli(tmp_path, "availability", "--model", "arome", "--packages", "SP1",
                "--since", since, "--json")
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert set(shown) == {"model", "packages", "groups", "sources", "checked_at",
                          "newest_complete", "runs"}
    assert shown["model"] == "arome-0025" and shown["packages"] == ["SP1"]
    assert shown["sources"] == ["open-data"] and len(shown["groups"]) == len(PRODUCT.groups)
    assert shown["newest_complete"] == aggregat.run_label(older)
    runs = {r["run"]: r for r in shown["runs"]}
    first = runs[aggregat.run_label(newest)]
    assert set(first) == {"run", "state", "complete", "complete_at", "in_datalake", "sources"}
    assert first["state"] == "incomplete" and first["complete"] is False
    assert first["sources"]["open-data"]["SP1"][LAST] == "missing"
    assert runs[aggregat.run_label(older)]["complete"] is True
    table = _cli(tmp_path, "availability", "-m", "arome-0025", "-p", "SP1", "--since", since)
    assert table.returncode == 0, table.stderr
    assert f"newest complete run: arome-0025 {aggregat.run_label(older)}" in table.stdout
    assert f"████████░ {len(PRODUCT.groups) - 1}/{len(PRODUCT.groups)}" in table.stdout
    # fetch --latest takes the same run through the same rule.
    fetched = _cli(tmp_path, "fetch", "--model", "arome-0025", "-p", "SP1", "--latest")
    assert fetched.returncode == 0, fetched.stderr
    assert f"newest complete run: arome-0025 {aggregat.run_label(older)}" in fetched.stdout


@pytest.mark.parametrize(("args", "expected"), [
    (("--model", "harmonie"), "unknown weather model 'harmonie'"),
    (("--model", "arome", "--since", "yesterday"), "--since 'yesterday' is not a day"),
    (("--model", "arome", "--since", "2999-01-01"), "--since 2999-01-01 is in the future"),
    (("--model", "arome", "--since", "2020-01-01"), "--since 2020-01-01 is more than 31 days"),
    (("--model", "arome", "--packages", "XX9"), "unknown package 'XX9'"),
])
def test_cli_bad_input_is_one_line_and_exit_2(tmp_path, args, expected):
    done = _cli(tmp_path, "availability", *args)
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], done.stderr
    assert "Traceback" not in done.stderr
