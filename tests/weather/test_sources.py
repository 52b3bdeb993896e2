"""Weather sources tried in order for every file: open-data, mirror and Météo-France's
authenticated API, against real loopback servers of both layouts with faults."""

from __future__ import annotations

import json
import socket
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
import urllib3
from archive_server import ApiAuth, ArchiveServer, Failure, archive_rel, write_archive

from aggregat.config import load_environment, secret_forms
from aggregat.errors import FetchError
from aggregat.weather.availability import latest_complete_run
from aggregat.weather.datalake import Datalake
from aggregat.weather.fetch import FAILED, SKIPPED, fetch_run
from aggregat.weather.mfapi import ClientCredentials, RateLimiter
from aggregat.weather.products import get_product
from aggregat.weather.sources import (
    ERROR,
    INCOMPLETE,
    MISSING,
    PRESENT,
    configured_sources,
)

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)
N_FILES = 2 * len(PRODUCT.groups)  # SP1 + SP2
KEY = "k3y/with:odd@chars%"
OPTS = dict(workers=4, retries=3, timeout_s=5, progress=False, backoff_s=0.001,
            backoff_max_s=2.0)


def rel_of(package: str, index: int) -> str:
    return archive_rel(PRODUCT, RUN, package, PRODUCT.groups[index])


def name_of(arel: str) -> str:
    return arel.rsplit("/", 1)[-1]


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def archive(tmp_path):
    root = tmp_path / "archive"
    return root, write_archive(root, PRODUCT, [RUN])


def make_config(tmp_path: Path, sources: str, tables: str, weather: str = "") -> Path:
    path = tmp_path / "aggregat.toml"
    path.write_text(f'default_env = "prod"\n[env.prod]\nroot = "home"\n'
                    f"[env.prod.weather]\nsources = {sources}\n{weather}{tables}")
    return path


def api_table(base_url: str, name: str = "portail", rpm: float | None = None,
              auth: str = 'api_key = "${MF_API_KEY}"') -> str:
    cap = f"requests_per_minute = {rpm}\n" if rpm else ""
    return (f'[env.prod.weather.source.{name}]\nkind = "meteofrance-api"\n'
            f'base_url = "{base_url}"\n{auth}\n{cap}')


def open_table(base_url: str, name: str = "open-data") -> str:
    return f'[env.prod.weather.source.{name}]\nkind = "open-data"\nbase_url = "{base_url}"\n'


def oauth_config(tmp_path: Path, api: ArchiveServer, monkeypatch) -> Path:
    """The API source with OAuth2 client credentials (client-1, KEY) at ``api``."""
    monkeypatch.setenv("AGGREGAT_PROD_MF_ID", "client-1")
    monkeypatch.setenv("AGGREGAT_PROD_MF_SECRET", KEY)
    token_url = api.base_url.replace("/previnum", "/token")
    return make_config(tmp_path, '["portail"]', api_table(
        api.base_url, auth=f'client_id = "${{MF_ID}}"\nclient_secret = "${{MF_SECRET}}"\n'
                           f'token_url = "{token_url}"'))


def sources_of(config: Path) -> list:
    return configured_sources(load_environment("prod", config))


def fetch(sources, lake, **kw):
    return fetch_run(PRODUCT, RUN, lake, sources=sources, **{**OPTS, **kw})


def run_cli(monkeypatch, *args: str) -> int:
    from aggregat.cli.main import main

    monkeypatch.setattr(sys, "argv", ["aggregat", *args])
    try:
        main()
    except SystemExit as exc:
        return exc.code or 0
    return 0


def assert_no_key(*texts: str) -> None:
    for text in texts:
        for form in secret_forms(KEY):
            assert form not in text


# -- the brief's configuration, a whole run -----------------------------------------------------
def test_a_whole_run_from_two_sources_through_the_cli(tmp_path, archive, monkeypatch, capsys):
    """open-data lacks some files and truncates others; the API (key, 429 with Retry-After,
    a requests-per-minute cap) serves those; exit 0, and the key is nowhere."""
    root, data = archive
    lacking = [rel_of("SP1", 2), rel_of("SP2", 7)]
    truncated = [rel_of("SP1", 5), rel_of("SP2", 0)]
    partial_root = tmp_path / "open-data"
    write_archive(partial_root, PRODUCT, [RUN], skip=lacking)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    for var in ("AGGREGAT_ENV", "AGGREGAT_CONFIG", "AGGREGAT_HOME"):
        monkeypatch.delenv(var, raising=False)
    rpm = 300.0  # one request every 0.2 s at most
    with ArchiveServer(partial_root) as bucket, \
            ArchiveServer(root, "/previnum", api=ApiAuth(api_key=KEY)) as api:
        for arel in truncated:
            bucket.fail(arel, Failure(truncate_at=100))
        api.fail(truncated[0], Failure(status=429, retry_after="1", times=1))
        make_config(tmp_path, '["open-data", "portail"]',
                    open_table(bucket.base_url) + api_table(api.base_url, rpm=rpm),
                    weather="retries = 2\nretry_backoff_s = 0.001\nretry_backoff_max_s = 2.0\n")
        code = run_cli(monkeypatch, "-v", "weather", "fetch", "--model", "arome-0025",
                       "--run", "2026-11-28T00")
        api_gets = api.gets()
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "served by open-data 14, portail 4" in out.out.replace("\n", " ")
    lake = Datalake(str(tmp_path / "home" / "datalake"))
    manifest_text = (tmp_path / "home" / "datalake" / lake.manifest_rel(PRODUCT, RUN)).read_text()
    manifest = json.loads(manifest_text)["files"]
    assert len(manifest) == N_FILES
    for arel, body in data.items():
        key = f"{arel.split('/')[-2]}/{name_of(arel)}"
        entry = manifest[key]
        expected = "portail" if arel in lacking + truncated else "open-data"
        assert entry["source"] == expected, (arel, entry)
        assert lake.local_path(lake.run_prefix(PRODUCT, RUN) + "/" + key).read_bytes() == body
        if expected == "portail":
            assert "productARO?referencetime=2026-11-28T00:00:00Z" in entry["url"]
    # The API was asked for exactly the files open-data could not give, with the key header.
    assert {r.path.rsplit("/", 1)[-1] for r in api_gets} == {name_of(a)
                                                            for a in lacking + truncated}
    assert all(r.headers.get("apikey") == KEY for r in api_gets)
    # 429 honoured: no request to the API left before its Retry-After had passed.
    limited = next(i for i, r in enumerate(api_gets) if r.status == 429)
    assert all(r.at - api_gets[limited].at >= 0.95 for r in api_gets[limited + 1:])
    # The cap: API requests at least 60/rpm seconds apart (whatever the worker count).
    gaps = [b.at - a.at for a, b in zip(api_gets, api_gets[1:], strict=False)]
    assert min(gaps) >= 60 / rpm / 2, gaps  # half: the server stamps them with some jitter
    assert_no_key(out.out, out.err, manifest_text)


def test_files_present_in_the_manifest_are_skipped_and_keep_their_source(tmp_path, archive):
    root, _ = archive
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root) as bucket:
        config = make_config(tmp_path, '["open-data"]', open_table(bucket.base_url))
        first = fetch(sources_of(config), lake)
        again = fetch(sources_of(config), lake)
    assert first.served == {"open-data": N_FILES}
    assert all(f.status == SKIPPED and f.source == "open-data" for f in again.files)
    assert again.served == {}


# -- credentials -------------------------------------------------------------------------------
def test_a_refused_key_sends_every_file_to_the_next_source_with_a_clear_message(
        tmp_path, archive, monkeypatch, caplog):
    root, _ = archive
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root, "/previnum", api=ApiAuth(api_key="the-right-key")) as api, \
            ArchiveServer(root) as bucket:
        config = make_config(tmp_path, '["portail", "open-data"]',
                             api_table(api.base_url) + open_table(bucket.base_url))
        report = fetch(sources_of(config), lake)
        refused = api.gets()
    assert report.complete and report.served == {"open-data": N_FILES}
    # No retry at that source: one 401 per worker at most, then it is given up.
    assert 1 <= len(refused) <= OPTS["workers"]
    why = report.sources_given_up["portail"]
    assert "[env.prod.weather.source.portail] api_key" in why and "401" in why
    assert "portail" in report.summary() and "api_key" in report.summary()
    assert_no_key(caplog.text, report.summary(), why)


def test_a_refused_key_at_the_only_source_is_one_configuration_error(
        tmp_path, archive, monkeypatch, capsys):
    root, _ = archive
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    with ArchiveServer(root, "/previnum", api=ApiAuth(api_key="the-right-key")) as api:
        make_config(tmp_path, '["portail"]', api_table(api.base_url))
        code = run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025",
                       "--run", "2026-11-28T00", "--retries", "0")
    err = capsys.readouterr().err
    assert code == 2, err
    line = " ".join(err.split())
    assert "api_key" in line and "portail" in line and "Traceback" not in err, line
    assert_no_key(err)


def test_oauth_token_is_fetched_once_and_renewed_after_a_401(tmp_path, archive, monkeypatch):
    root, _ = archive
    auth = ApiAuth(client_id="client-1", client_secret=KEY)
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root, "/previnum", api=auth) as api:
        sources = sources_of(oauth_config(tmp_path, api, monkeypatch))
        report = fetch(sources, lake)
        assert report.complete and auth.token_requests == 1  # one token for all the workers
        assert all(r.headers["Authorization"] == "Bearer tok1" for r in api.gets())
        auth.revoke_tokens()  # the API forgets it (expired server-side): 401, then a new one
        for f in lake.run_files(PRODUCT, RUN)[:3]:
            lake.local_path(f).unlink()
        again = fetch(sources, lake, workers=1)
    assert again.downloaded == 3 and again.complete
    assert auth.token_requests == 2
    assert not again.sources_given_up


def test_a_token_is_renewed_before_it_expires(tmp_path, archive):
    root, _ = archive
    now = [0.0]
    auth = ApiAuth(client_id="client-2", client_secret=KEY, token_life_s=300)
    http = urllib3.PoolManager(retries=False)
    with ArchiveServer(root, "/previnum", api=auth) as api:
        creds = ClientCredentials(api.base_url.replace("/previnum", "/token"), "client-2", KEY,
                                  renew_margin_s=60, clock=lambda: now[0])
        first = creds.headers(http)
        now[0] = 239.0  # 61 s left: still good
        assert creds.headers(http) == first and auth.token_requests == 1
        now[0] = 241.0  # within the margin: renewed before it expires
        assert creds.headers(http) != first and auth.token_requests == 2


def test_wrong_client_secret_is_refused_at_the_token_endpoint(tmp_path, archive, monkeypatch):
    root, _ = archive
    monkeypatch.setenv("AGGREGAT_PROD_MF_ID", "client-1")
    monkeypatch.setenv("AGGREGAT_PROD_MF_SECRET", KEY)
    auth = ApiAuth(client_id="client-1", client_secret="another")
    with ArchiveServer(root, "/previnum", api=auth) as api, ArchiveServer(root) as bucket:
        token_url = api.base_url.replace("/previnum", "/token")
        config = make_config(tmp_path, '["portail", "open-data"]', api_table(
            api.base_url, auth=f'client_id = "${{MF_ID}}"\nclient_secret = "${{MF_SECRET}}"\n'
                               f'token_url = "{token_url}"') + open_table(bucket.base_url))
        report = fetch(sources_of(config), Datalake(str(tmp_path / "lake")))
        assert not api.gets()
    assert report.complete and report.served == {"open-data": N_FILES}
    assert "client_id" in report.sources_given_up["portail"]


# -- a source down entirely --------------------------------------------------------------------
def test_a_source_that_is_down_is_given_up_and_its_files_go_to_the_next(tmp_path, archive,
                                                                        caplog):
    root, _ = archive
    dead = f"http://127.0.0.1:{closed_port()}/pnt"
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root) as bucket:
        config = make_config(tmp_path, '["open-data", "backup"]',
                             open_table(dead) + open_table(bucket.base_url, "backup"))
        report = fetch(sources_of(config), lake, retries=5, backoff_s=0.5, backoff_max_s=30)
    assert report.complete and report.served == {"backup": N_FILES}
    assert "connection refused" in report.sources_given_up["open-data"]
    # One connection attempt per file at most before it is given up, and no backoff wait:
    # each file moved on at its first refusal.
    assert all(f.attempts <= 2 for f in report.files)
    assert "given up" in caplog.text


@pytest.mark.parametrize(("failure", "why"), [(Failure(status=503), "HTTP 503"),
                                              (Failure(delay_s=1.0), "timed out")])
def test_a_source_answering_server_errors_is_given_up_when_another_follows(tmp_path, archive,
                                                                         failure, why):
    root, data = archive
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root) as busy, ArchiveServer(root) as good:
        for arel in data:
            busy.fail(arel, failure)
        config = make_config(tmp_path, '["busy", "good"]',
                             open_table(busy.base_url, "busy") + open_table(good.base_url, "good"))
        report = fetch(sources_of(config), lake, retries=5, timeout_s=0.3)
        asked = len(busy.gets())
    assert report.complete and report.served == {"good": N_FILES}
    assert why in report.sources_given_up["busy"]
    # Not every file through every retry there (6 each): a few errors in a row, then no more.
    assert asked < 2 * OPTS["workers"] + 3, asked


def test_every_source_down_is_one_error(tmp_path):
    lake = Datalake(str(tmp_path / "lake"))
    config = make_config(tmp_path, '["a", "b"]',
                         open_table(f"http://127.0.0.1:{closed_port()}/pnt", "a")
                         + open_table(f"http://127.0.0.1:{closed_port()}/pnt", "b"))
    with pytest.raises(FetchError, match=r"no weather source could serve .*a: .*b: "):
        fetch(sources_of(config), lake)


# -- mirrors ------------------------------------------------------------------------------------
def test_a_mirror_on_a_local_folder_fills_the_gaps_of_the_bucket(tmp_path, archive):
    root, data = archive
    gone = rel_of("SP2", 3)
    partial = tmp_path / "bucket"
    write_archive(partial, PRODUCT, [RUN], skip=[gone])
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(partial) as bucket:
        # A relative folder is read from the config file's folder, like the datalake.
        config = make_config(tmp_path, '["open-data", "company"]', open_table(bucket.base_url)
                             + '[env.prod.weather.source.company]\nkind = "mirror"\n'
                               f'base_url = "{root.relative_to(tmp_path)}"\n')
        report = fetch(sources_of(config), lake)
        assert len(bucket.gets(name_of(gone))) == 1
    assert report.complete and report.served == {"open-data": N_FILES - 1, "company": 1}
    got = next(f for f in report.files if f.name == name_of(gone))
    assert got.source == "company" and got.url == f"{root}/{gone}"
    assert lake.local_path(got.rel).read_bytes() == data[gone]


def test_a_mirror_on_an_fsspec_store(tmp_path, archive):
    import fsspec

    root, data = archive
    fs = fsspec.filesystem("memory")
    for arel, body in data.items():
        fs.pipe(f"/mirror-test/pnt/{arel}", body)
    config = make_config(tmp_path, '["m"]', '[env.prod.weather.source.m]\nkind = "mirror"\n'
                                            'base_url = "memory://mirror-test/pnt"\n')
    report = fetch(sources_of(config), Datalake(str(tmp_path / "lake")))
    assert report.complete and report.served == {"m": N_FILES}


def test_a_missing_file_everywhere_is_missing_and_names_each_source(tmp_path, archive):
    root, _ = archive
    gone = rel_of("SP1", 8)
    partial = tmp_path / "bucket"
    write_archive(partial, PRODUCT, [RUN], skip=[gone])
    (root / gone).unlink()
    with ArchiveServer(partial) as bucket:
        config = make_config(tmp_path, '["open-data", "company"]', open_table(bucket.base_url)
                             + f'[env.prod.weather.source.company]\nkind = "mirror"\n'
                               f'base_url = "{root}"\n')
        report = fetch(sources_of(config), Datalake(str(tmp_path / "lake")))
    res = next(f for f in report.files if f.name == name_of(gone))
    assert res.status == "missing" and report.missing == 1
    assert "open-data: not on the server" in res.error and "company: not in the mirror" in res.error


def test_a_truncated_file_at_the_last_source_fails_by_name(tmp_path, archive):
    root, _ = archive
    bad = rel_of("SP1", 1)
    with ArchiveServer(root) as one, ArchiveServer(root) as two:
        one.fail(bad, Failure(status=404))
        two.fail(bad, Failure(truncate_at=100))
        config = make_config(tmp_path, '["one", "two"]',
                             open_table(one.base_url, "one") + open_table(two.base_url, "two"))
        report = fetch(sources_of(config), Datalake(str(tmp_path / "lake")), retries=1)
    res = next(f for f in report.files if f.name == name_of(bad))
    assert res.status == FAILED and "one: not on the server" in res.error
    assert "two: connection dropped at byte" in res.error


# -- probes (for `weather availability`) --------------------------------------------------------
def test_probe_says_present_missing_incomplete_or_error_at_each_kind(tmp_path, archive,
                                                                     monkeypatch):
    root, _ = archive
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    empty, gone = rel_of("SP1", 0), rel_of("SP1", 1)
    (root / empty).write_bytes(b"")
    (root / gone).unlink()
    http = urllib3.PoolManager(retries=False)
    with ArchiveServer(root) as bucket, \
            ArchiveServer(root, "/previnum", api=ApiAuth(api_key=KEY)) as api, \
            ArchiveServer(root, "/previnum", api=ApiAuth(api_key="other")) as refusing:
        config = make_config(
            tmp_path, '["open-data", "portail", "refusing", "company", "dead"]',
            open_table(bucket.base_url) + api_table(api.base_url)
            + api_table(refusing.base_url, "refusing")
            + f'[env.prod.weather.source.company]\nkind = "mirror"\nbase_url = "{root}"\n'
            + open_table(f"http://127.0.0.1:{closed_port()}/pnt", "dead"))
        sources = {s.name: s for s in sources_of(config)}

        def probe(name: str, index: int) -> str:
            return sources[name].probe(PRODUCT, RUN, "SP1", PRODUCT.groups[index], http, 2.0)

        for name in ("open-data", "portail", "company"):
            assert [probe(name, i) for i in (0, 1, 2)] == [INCOMPLETE, MISSING, PRESENT], name
        assert probe("refusing", 2) == ERROR and probe("dead", 2) == ERROR
        # A probe reads two tiny ranges (head and tail), never the file.
        gets = [r for r in api.requests if r.method == "GET"]
        assert gets and all(r.range for r in gets)
        bucket.fail(rel_of("SP1", 2), Failure(status=405, times=None))
        assert sources["open-data"].check(PRODUCT, RUN, "SP1", PRODUCT.groups[2], http)[0] \
            == ERROR  # the server says no


def test_latest_run_counts_a_file_present_at_any_source(tmp_path, archive, monkeypatch):
    root, _ = archive
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    partial = tmp_path / "bucket"
    write_archive(partial, PRODUCT, [RUN], skip=[rel_of("SP2", 4)])
    now = RUN.replace(hour=2, minute=30)
    with ArchiveServer(partial) as bucket, \
            ArchiveServer(root, "/previnum", api=ApiAuth(api_key=KEY)) as api:
        alone = [s for s in sources_of(make_config(tmp_path, '["open-data"]',
                                                   open_table(bucket.base_url)))]
        both = sources_of(make_config(tmp_path, '["open-data", "portail"]',
                                      open_table(bucket.base_url) + api_table(api.base_url)))
        def latest(sources):
            found = latest_complete_run(PRODUCT, sources, ["SP1", "SP2"], min_run_age_h=2.0,
                                        now=now, lookback_h=3)
            return found and found.run

        assert latest(alone) is None
        assert latest(both) == RUN


def test_rate_limiter_spaces_requests_and_pauses_them_all():
    clock = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    limiter = RateLimiter(120, clock=lambda: clock[0], sleep=sleep)
    for _ in range(3):
        limiter.acquire()
    assert slept == [0.5, 0.5]
    limiter.pause(10.0)
    limiter.acquire()
    assert slept[-1] == pytest.approx(10.0)


def test_api_url_of_each_model():
    arome, arpege = get_product("arome-0025"), get_product("arpege-01")
    base = "https://public-api.meteofrance.fr/previnum"
    assert arome.api_url(base, RUN, "SP1", arome.groups[0]) == (
        f"{base}/DPPaquetAROME/v1/models/AROME/grids/0.025/packages/SP1/productARO"
        "?referencetime=2026-11-28T00:00:00Z&time=00H06H&format=grib2")
    assert arpege.api_url(base + "/", RUN, "SP2", arpege.groups[1]) == (
        f"{base}/DPPaquetARPEGE/v1/models/ARPEGE/grids/0.1/packages/SP2/productARP"
        "?referencetime=2026-11-28T00:00:00Z&time=013H024H&format=grib2")


def test_cli_source_option_picks_configured_sources(tmp_path, archive, monkeypatch, capsys):
    root, _ = archive
    monkeypatch.chdir(tmp_path)
    with ArchiveServer(root) as one, ArchiveServer(root) as two:
        make_config(tmp_path, '["one", "two"]',
                    open_table(one.base_url, "one") + open_table(two.base_url, "two"))
        code = run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025",
                       "--run", "2026-11-28T00", "--source", "two")
        assert code == 0 and not one.gets() and len(two.gets()) == N_FILES
        assert "served by two 18" in " ".join(capsys.readouterr().out.split())
        code = run_cli(monkeypatch, "weather", "fetch", "--model", "arome-0025",
                       "--run", "2026-11-28T00", "--source", "three")
    err = " ".join(capsys.readouterr().err.split())
    assert code == 2 and "'three'" in err and "one, two" in err


def test_env_check_names_a_source_whose_key_is_refused(tmp_path, archive, monkeypatch):
    from aggregat.ops.envcheck import check_environment

    root, _ = archive
    monkeypatch.setenv("AGGREGAT_PROD_MF_API_KEY", KEY)
    with ArchiveServer(root, "/previnum", api=ApiAuth(api_key="other")) as api, \
            ArchiveServer(root) as bucket:
        config = make_config(tmp_path, '["open-data", "portail"]',
                             open_table(bucket.base_url) + api_table(api.base_url))
        checks = {c.name: c for c in check_environment(load_environment("prod", config),
                                                       timeout_s=2)}
    assert checks["weather source open-data"].status == "ok"
    refused = checks["weather source portail"]
    assert refused.status == "problem" and "api_key" in refused.message
    assert_no_key(refused.message)


def test_one_token_for_the_runs_of_a_backfill(tmp_path, monkeypatch):
    """The sources of an environment are made once per process: fetching several runs (a
    backfill, the availability probes before them) asks the token endpoint once."""
    runs = [RUN, datetime(2026, 11, 28, 3, tzinfo=UTC)]
    root = tmp_path / "archive"
    write_archive(root, PRODUCT, runs)
    auth = ApiAuth(client_id="client-1", client_secret=KEY)
    lake = Datalake(str(tmp_path / "lake"))
    with ArchiveServer(root, "/previnum", api=auth) as api:
        config = oauth_config(tmp_path, api, monkeypatch)
        for run in runs:
            report = fetch_run(PRODUCT, run, lake, sources=sources_of(config), **OPTS)
            assert report.complete
    assert auth.token_requests == 1
