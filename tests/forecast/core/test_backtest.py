import numpy as np
import pandas as pd
import pytest

from aggregat.errors import InputError
from aggregat.forecast.core import metrics
from aggregat.forecast.core.backtest import read_csv_inputs, run_backtest


def test_csv_inputs_unnamed_time_column_offsets_and_booleans(tmp_path):
    a = tmp_path / "a.csv"
    a.write_text(",load,temp,flag\n"
                 "2020-10-25 00:00:00+02:00,1.5,10,True\n"
                 "2020-10-25 02:00:00+01:00,2.5,11,False\n")
    b = tmp_path / "b.csv"
    b.write_text(",load,temp,flag\n2020-10-25 01:00:00+00:00,9.0,12,true\n"
                 "2020-10-25 02:00:00+00:00,4.0,13,false\n")
    load, w = read_csv_inputs([str(tmp_path / "*.csv")], "", "load", ["temp"], ["flag"])
    assert list(load.index) == list(pd.DatetimeIndex(
        ["2020-10-24 22:00", "2020-10-25 01:00", "2020-10-25 02:00"], tz="UTC"))
    assert load.tolist() == [1.5, 9.0, 4.0]  # the later file wins on 01:00 UTC
    assert w["flag"].tolist() == [1.0, 1.0, 0.0]


def test_csv_inputs_naive_local_times_and_errors(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("t,mw\n2026-01-01 00:00,1\n2026-01-01 01:00,2\n")
    load, _ = read_csv_inputs([str(p)], "t", "mw", naive_tz="Europe/Paris")
    assert load.index[0] == pd.Timestamp("2025-12-31 23:00", tz="UTC")
    p.write_text("t,mw\n2026-01-01 00:00,1\n2026-01-01 01:00,n/a?\n")
    with pytest.raises(InputError, match="non-numeric"):
        read_csv_inputs([str(p)], "t", "mw")
    p.write_text("t,mw\nyesterday,1\n")
    with pytest.raises(InputError, match=r"x\.csv line 2 column 't': cannot read 'yesterday' as "
                       "a time"):
        read_csv_inputs([str(p)], "t", "mw")
    with pytest.raises(InputError, match="no file matches"):
        read_csv_inputs([str(tmp_path / "nothing-*.csv")], "t", "mw")


def test_csv_inputs_local_times_in_file_order_across_the_october_hour(tmp_path):
    p = tmp_path / "x.csv"
    hours = ["01:00", "01:30", "02:00", "02:30", "02:00", "02:30", "03:00"]
    p.write_text("t,mw\n" + "".join(f"2026-10-25 {h},{i}\n" for i, h in enumerate(hours)))
    load, _ = read_csv_inputs([str(p)], "t", "mw", naive_tz="Europe/Paris")
    assert list(load.index) == list(pd.date_range("2026-10-24T23:00Z", periods=7, freq="30min"))
    assert load.tolist() == list(range(7))  # each value at its own instant


def test_csv_inputs_dst_gap_and_other_formats_are_errors_with_their_line(tmp_path):
    p = tmp_path / "x.csv"
    p.write_text("t,mw\n2026-03-29 01:30,1\n2026-03-29 02:30,2\n2026-03-29 03:30,3\n")
    with pytest.raises(InputError, match=r"x\.csv line 3 column 't': 2026-03-29 02:30 does not "
                       r"exist in Europe/Paris \(DST gap\)"):
        read_csv_inputs([str(p)], "t", "mw", naive_tz="Europe/Paris")
    load, _ = read_csv_inputs([str(p)], "t", "mw", naive_tz="Europe/Paris",
                              nonexistent="drop")
    assert load.tolist() == [1.0, 3.0]
    # No format="mixed" guessing: a second layout in the file, or a day/month order, is refused.
    p.write_text("t,mw\n2026-01-05 00:00,1\n05/01/2026 01:00,2\n")
    with pytest.raises(InputError, match=r"x\.csv line 3 column 't': cannot read "
                       "'05/01/2026 01:00' as a time"):
        read_csv_inputs([str(p)], "t", "mw")
    p.write_text("t,mw\n01/02/2026 00:00,1\n")
    with pytest.raises(InputError, match=r"line 2 column 't': cannot read '01/02/2026 00:00'"):
        read_csv_inputs([str(p)], "t", "mw")
    load, _ = read_csv_inputs([str(p)], "t", "mw", time_format="%d/%m/%Y %H:%M")
    assert load.index[0] == pd.Timestamp("2026-02-01T00:00Z")


def test_backtest_protocol_and_weekly_retrains(load, weather, small_cfg):
    r = run_backtest(load, weather, small_cfg, test_weeks=2)
    f, rep = r.forecasts, r.report
    assert rep["protocol"]["test_start"] == "2026-04-16"  # data ends 30 April 01:00 local
    assert rep["protocol"]["test_end"] == "2026-04-29"
    assert len(rep["retrains"]) == 2
    assert rep["retrains"][0]["issue_time"] == "2026-04-15T08:00:00+00:00"
    assert f["lead_h"].between(14, 37).all()
    assert len(f) == 14 * 24 and f["actual_mw"].notna().all()
    persistence = load.reindex(pd.DatetimeIndex(f["valid_time"]) - pd.Timedelta(days=7))
    assert (f["persistence_mw"].to_numpy() == persistence.to_numpy()).all()
    assert rep["metrics"]["skill"] > 0
    assert rep["baseline_share"] == 0
    # Conformal margins keep the 10-90 band near its nominal 80 % on unseen weeks.
    assert 0.65 <= rep["metrics"]["coverage_10_90"] <= 0.95
    # CRPS from the quantiles, and rCRPS against the test period's P1-P99 load range, overall
    # and per lead time.
    y = f["actual_mw"].to_numpy()
    crps = 2 * np.mean([metrics.pinball(y, f[c], q)
                        for c, q in (("p10_mw", 0.1), ("p50_mw", 0.5), ("p90_mw", 0.9))])
    span = np.quantile(y, 0.99) - np.quantile(y, 0.01)
    m = rep["metrics"]
    assert m["crps"] == pytest.approx(crps) and m["load_p1_p99"] == pytest.approx(span)
    assert m["rcrps"] == pytest.approx(crps / span)
    lead = rep["by_lead_h"][0]
    g = f[f["lead_h"] == lead["lead_h"]]
    assert lead["rcrps"] == pytest.approx(metrics.crps(g["actual_mw"], {
        0.1: g["p10_mw"], 0.5: g["p50_mw"], 0.9: g["p90_mw"]}) / span)


def test_backtest_without_history_says_so(load, weather, small_cfg):
    with pytest.raises(InputError, match="no training history"):
        run_backtest(load, weather, small_cfg, test_weeks=9)
