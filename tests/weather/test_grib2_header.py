"""The byte-level GRIB2 header reader agrees with ecCodes on every message it accepts."""

from __future__ import annotations

from datetime import UTC, datetime

import eccodes
import pytest

from aggregat.weather.datalake import message_offsets
from aggregat.weather.grib import read_header
from aggregat.weather.grib2_header import fast_header
from aggregat.weather.products import get_product
from aggregat.weather.simulate import simulate_run

FIELDS = ("param", "key", "level", "start_step", "end_step", "run_time", "packing", "bits",
          "geometry", "level_name")


@pytest.mark.parametrize("model, steps, packages", [
    ("arome-0025", (0, 1, 6, 7, 50, 51), ("SP1", "SP2", "SP3", "HP1")),
    ("arpege-01", (0, 1, 12, 13, 101, 102), ("SP1", "SP2", "IP1")),
    ("arpege-025", (0, 1, 48, 51, 99, 102), ("SP1",)),
    ("arome-001", (0, 1, 51), ("SP1", "SP3")),
])
def test_fast_header_equals_eccodes(tmp_path, model, steps, packages):
    product = get_product(model)
    grid = product.grid.crop(47.0, 45.0, 4.0, 6.0) if not product.grid.is_global else \
        product.grid.crop(47.0, 45.0, 0.0, 3.0)
    run = datetime(2026, 11, 28, 6, tzinfo=UTC)
    files = simulate_run(product, run, tmp_path, grid=grid, steps=steps, packages=packages)
    checked = 0
    for path in files:
        data = path.read_bytes()
        offsets = message_offsets(path) + [len(data)]
        for index, (start, end) in enumerate(zip(offsets, offsets[1:], strict=False)):
            message = data[start:end]
            fast = fast_header(message, str(path), index, start)
            handle = eccodes.codes_new_from_message(message)
            try:
                slow = read_header(handle, str(path), index, start)
            finally:
                eccodes.codes_release(handle)
            assert fast is not None, slow.label
            for name in FIELDS:
                assert getattr(fast, name) == getattr(slow, name), (name, slow.label)
            checked += 1
    assert checked > 20


def test_unknown_or_foreign_messages_go_to_eccodes():
    sample = eccodes.codes_grib_new_from_samples("GRIB2")  # surface temperature: not in catalogue
    try:
        message = eccodes.codes_get_message(sample)
    finally:
        eccodes.codes_release(sample)
    assert fast_header(message, "x", 0, 0) is None
    grib1 = eccodes.codes_grib_new_from_samples("GRIB1")
    try:
        assert fast_header(eccodes.codes_get_message(grib1), "x", 0, 0) is None
    finally:
        eccodes.codes_release(grib1)
    assert fast_header(b"GRIB" + bytes(40), "x", 0, 0) is None
