"""The libaec fast path gives ecCodes' values, point for point, on every kind of field."""

from __future__ import annotations

from datetime import UTC, datetime

import eccodes
import numpy as np
import pytest

from aggregat.weather import ccsds
from aggregat.weather.datalake import message_offsets
from aggregat.weather.products import get_product
from aggregat.weather.simulate import simulate_run

pytestmark = pytest.mark.skipif(not ccsds.available(), reason="libaec not found")


def _messages(path):
    data = path.read_bytes()
    offsets = message_offsets(path) + [len(data)]
    return [data[a:b] for a, b in zip(offsets, offsets[1:], strict=False)]


@pytest.mark.parametrize("model, crop", [
    ("arome-0025", (55.4, 53.0, -12.0, -8.0)),  # the masked north-west corner: a bitmap
    ("arpege-01", (47.0, 45.0, 4.0, 6.0)),  # no bitmap
])
def test_pick_equals_eccodes(tmp_path, model, crop):
    product = get_product(model)
    run = datetime(2026, 11, 28, 0, tzinfo=UTC)  # night steps: constant ssrd fields (0 bits)
    files = simulate_run(product, run, tmp_path, grid=product.grid.crop(*crop),
                         steps=(0, 1, 2, 13), packages=("SP1", "SP2"))
    rng = np.random.default_rng(0)
    kinds = set()
    for path in files:
        for message in _messages(path):
            handle = eccodes.codes_new_from_message(message)
            try:
                eccodes.codes_set_double(handle, "missingValue", ccsds.MISSING)
                full = eccodes.codes_get_values(handle)
                kinds.add((eccodes.codes_get_long(handle, "bitmapPresent"),
                           eccodes.codes_get_long(handle, "bitsPerValue") == 0))
            finally:
                eccodes.codes_release(handle)
            idx = rng.integers(0, full.size, 300)
            got = ccsds.pick(message, idx, full.size)
            assert got is not None
            np.testing.assert_allclose(got, full[idx], rtol=1e-12, atol=1e-9)
    assert (False, True) in kinds or (True, True) in kinds  # a constant field was checked
    assert any(bitmap for bitmap, _ in kinds) == (model == "arome-0025")


def test_other_packings_are_left_to_eccodes(tmp_path):
    product = get_product("arpege-01")
    files = simulate_run(product, datetime(2026, 11, 28, tzinfo=UTC), tmp_path,
                         grid=product.grid.crop(47.0, 46.0, 4.0, 5.0), steps=(0,),
                         packages=("SP1",), packing="grid_simple")
    message = _messages(files[0])[0]
    assert ccsds.pick(message, np.array([0, 1]), 11 * 11) is None
