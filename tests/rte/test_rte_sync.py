"""`rte sync` against a loopback ODRE portal: exports and paged records, a 503 then OK,
incremental and idempotent, each value with the time it became known, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, timedelta

import pandas as pd
import pytest
from odre_server import NOW, OdreServer, eco2mix_rows, tempo_rows

from aggregat.bank import Bank
from aggregat.config import RteSettings
from aggregat.errors import FetchError
from aggregat.rte.client import OdsClient
from aggregat.rte.sync import load_watermark, sync_rte

START = NOW - timedelta(days=10)


def portal():
    realtime = eco2mix_rows(START, days=12, realised_until=NOW)  # forecasts reach NOW + 2 d
    consolidated = eco2mix_rows(START - timedelta(days=30), days=32, step_min=30)
    for row in consolidated:
        row["consommation"] += 7  # tells consolidated from real-time rows apart
    return {"eco2mix-national-tr": realtime, "eco2mix-national-cons-def": consolidated,
            "couleur-tempo": tempo_rows("2026-01-01", ["BLEU"] * 15 + ["ROUGE", "BLANC"]
                                        + ["TEMPO_BLEU"] * 3 + ["BLEU"])}


def settings(url, **more):
    return RteSettings(base_url=url, history_days=40, window_days=7, retries=2,
                       retry_backoff_s=0.0, retry_backoff_max_s=0.01, timeout_s=5, **more)


def consumption(bank):
    return bank.read("rte_consumption").sort_values("time").reset_index(drop=True)


def test_sync_twice_no_duplicates_and_availability(tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    with OdreServer(portal()) as server:
        first = sync_rte(bank, settings(server.url), now=NOW)
        df = consumption(bank)
        assert not df["time"].duplicated().any()
        # 40 days back: consolidated (30-min) until real-time starts, then 15-min rows
        assert df["time"].min() == pd.Timestamp(START - timedelta(days=30))
        assert df["time"].max() == pd.Timestamp(NOW + timedelta(days=2) - timedelta(minutes=15))
        assert first.rows["eco2mix-national-tr"] == 12 * 96  # every real-time row
        assert load_watermark(bank, "eco2mix-national-tr", server.url) == NOW - timedelta(
            minutes=15)  # the newest realised value, not RTE's forecasts beyond it
        # consolidated rows win where both datasets have the time
        overlap = df[df["time"] == pd.Timestamp(START)]
        assert overlap["source"].tolist() == ["eco2mix-national-cons-def"]
        assert overlap["consumption_mw"].iloc[0] % 100 == 7
        # realised: its time + 1 h; RTE's D-1 forecast: 19:00 Paris the day before
        row = df[df["time"] == pd.Timestamp("2026-01-15T12:00Z")].iloc[0]
        assert row["available_at"] == pd.Timestamp("2026-01-15T13:00Z")
        assert row["available_at__forecast_d1_mw"] == pd.Timestamp("2026-01-14T18:00Z")
        assert row["available_at__forecast_d_mw"] == pd.Timestamp("2026-01-15T06:00Z")
        future = df[df["time"] > pd.Timestamp(NOW)]
        assert future["consumption_mw"].isna().all() and future["forecast_d1_mw"].notna().all()

        requests = len(server.log)
        second = sync_rte(bank, settings(server.url), now=NOW)
        again = consumption(bank)
        pd.testing.assert_frame_equal(again.drop(columns="updated_at"),
                                      df.drop(columns="updated_at"))
        # incremental: from the watermarks minus the 2-day look-back, not 40 days again
        assert second.windows < first.windows and len(server.log) - requests < requests

    tempo = bank.read("rte_tempo").sort_values("time").reset_index(drop=True)
    red = tempo[tempo["colour"] == "RED"].iloc[0]
    # the Tempo day of 2026-01-16 runs from 06:00 Paris (05:00Z), announced at 10:40 the day
    # before (09:40Z)
    assert red["time"] == pd.Timestamp("2026-01-16T05:00Z")
    assert red["available_at"] == pd.Timestamp("2026-01-15T09:40Z")
    assert red["tempo_level"] == 3.0 and set(tempo["colour"]) == {"BLUE", "WHITE", "RED"}


def test_records_paging_gives_what_the_export_gives(tmp_path):
    with OdreServer(portal()) as server:
        exported, paged = Bank(str(tmp_path / "a")), Bank(str(tmp_path / "b"))
        sync_rte(exported, settings(server.url), now=NOW, tempo=False)
        server.log.clear()
        sync_rte(paged, settings(server.url, api="records", page_size=100), now=NOW,
                 tempo=False)
        offsets = [p for p in server.log if "offset=" in p]
        assert any("offset=600" in p for p in offsets)  # a 7-day window is 672 rows: 7 pages
        pd.testing.assert_frame_equal(consumption(paged).drop(columns="updated_at"),
                                      consumption(exported).drop(columns="updated_at"))


def test_503_then_ok_is_retried_and_since_rereads(tmp_path):
    bank = Bank(str(tmp_path / "bank"))
    with OdreServer(portal()) as server:
        server.faults = [503, 429]
        report = sync_rte(bank, settings(server.url), now=NOW, tempo=False)
        assert report.requests == report.windows + 2  # the two faults, then every window once
        n = len(consumption(bank))
        since = sync_rte(bank, settings(server.url), now=NOW, tempo=False,
                         since=date(2026, 1, 1))
        assert since.rows["eco2mix-national-tr"] > 0 and len(consumption(bank)) == n


def test_errors_are_one_line(tmp_path):
    with OdreServer(portal()) as server:
        client = OdsClient(settings(server.url, realtime_dataset="nope"))
        with pytest.raises(FetchError, match=r"dataset 'nope' not found .*check the dataset ids"):
            client.rows("nope", "date_heure", NOW, NOW + timedelta(days=1))
        server.faults = [503] * 3
        with pytest.raises(FetchError, match=r"unreachable .* after 3 attempts \(HTTP 503\)"):
            OdsClient(settings(server.url)).rows("eco2mix-national-tr", "date_heure", NOW,
                                                 NOW + timedelta(days=1))
    # nothing listening: the CLI prints one line and exits 2, no traceback
    (tmp_path / "aggregat.toml").write_text(f"""
[env.t]
root = "{tmp_path}/data"
[env.t.rte]
base_url = "{server.url}"
retries = 1
retry_backoff_s = 0
timeout_s = 2
""")
    env = {**os.environ, "AGGREGAT_CONFIG": str(tmp_path / "aggregat.toml"),
           "AGGREGAT_ENV": "t"}
    done = subprocess.run([sys.executable, "-m", "aggregat.cli.main", "rte", "sync"],
                          capture_output=True, text=True, env=env, timeout=60)
    assert done.returncode == 2, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "RTE open data unreachable at http://127.0.0.1" in errors[0]
    assert "connection refused" in errors[0].lower()  # the retries are logged as warnings
    assert "Traceback" not in done.stderr
