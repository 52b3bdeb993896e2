"""De-accumulation across steps and files, units, derived wind."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from aggregat.weather.assemble import deaccumulate


def _acc(pairs):
    return {end: (0, np.array([v], dtype=float)) for end, v in pairs}


def test_hourly_amounts_from_run_start_accumulations():
    out = deaccumulate(_acc([(1, 2.0), (2, 5.0), (3, 5.0)]), list(range(0, 4)), "tp")
    assert {k: float(v[0][0]) for k, v in out.items()} == {1: 2.0, 2: 3.0, 3: 0.0}
    assert all(hours == 1 for _, hours in out.values())


def test_packing_noise_negatives_are_clipped():
    out = deaccumulate(_acc([(1, 2.0), (2, 1.9999)]), [0, 1, 2], "tp")
    assert out[2][0][0] == 0.0


def test_a_hole_never_becomes_a_longer_interval():
    out = deaccumulate(_acc([(1, 1.0), (2, 2.0), (5, 9.0), (6, 10.0)]), list(range(7)), "tp")
    assert 5 not in out  # step 4 missing: the 2..5 amount would be mislabelled as hourly
    assert out[6][0][0] == 1.0


def test_three_hourly_steps_give_three_hour_intervals():
    steps = [0, 1, 2, 3, 6]
    out = deaccumulate(_acc([(1, 1.0), (2, 2.0), (3, 3.0), (6, 9.0)]), steps, "ssrd")
    assert out[6] == (np.array([6.0]), 3)


def test_interval_messages_are_chained():
    ends = {1: (0, np.array([1.0])), 2: (1, np.array([2.0]))}  # second message covers 1..2 only
    out = deaccumulate(ends, [0, 1, 2], "tp")
    assert out[2][0][0] == 2.0


def test_assemble_units_and_wind(tmp_path):
    from aggregat.weather.assemble import assemble_run
    from aggregat.weather.decode_task import Field
    from aggregat.weather.grib import MessageHeader

    run = datetime(2026, 11, 28, tzinfo=UTC)

    def field(param, start, end, values, units=""):
        header = MessageHeader("f", 0, 0, 0, 2, param, param, (), "", 0, start, end, run, units,
                               "grid_ccsds", 16, "regular_ll", None)
        return Field(header, np.array(values, dtype=np.float32))

    fields = [field("t2m", 0, 1, [273.15, 283.15]), field("u10", 0, 1, [0.0, 3.0]),
              field("v10", 0, 1, [-5.0, 0.0]), field("ssrd", 0, 1, [0.0, 3.6e6]),
              field("ssrd", 0, 2, [0.0, 7.2e6])]
    frame = assemble_run(fields, ["a", "b"], model="m", run_time=run, available_at=run,
                         expected_steps=[0, 1, 2])
    one = frame[frame.step_h == 1].set_index("location")
    np.testing.assert_allclose(one["t2m_c"], [0.0, 10.0], atol=1e-4)
    np.testing.assert_allclose(one["wind_speed_10m_ms"], [5.0, 3.0])
    np.testing.assert_allclose(one["wind_dir_10m_deg"], [0.0, 270.0])  # from north; from west
    np.testing.assert_allclose(one["ssrd_wm2"], [0.0, 1000.0])
    two = frame[frame.step_h == 2].set_index("location")
    np.testing.assert_allclose(two["ssrd_wm2"], [0.0, 1000.0])
    assert frame["valid_time"].dt.tz is not None
