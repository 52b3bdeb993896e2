"""Fuzz the GRIB framing walk and the byte-level GRIB2 header reader (Hypothesis).

Any bytes give a result or one GribError line, never another exception or a hang: real files
(a GRIB1 ARPEGE file, simulated GRIB2 ones) are mutated (bytes flipped, cut, inserted, spliced)
so the fuzz reaches past the first header, plus fully random bytes.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregat.errors import AggregatError, GribError
from aggregat.weather.datalake import check_grib_framing, message_offsets
from aggregat.weather.grib import MessageHeader
from aggregat.weather.grib2_header import fast_header

DATA = Path(__file__).parent.parent / "data"
FUZZ = settings(max_examples=150, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


def _grib2_sample() -> bytes:
    """A few simulated AROME GRIB2 messages (CCSDS packing, accumulations), cut to 3."""
    import tempfile

    from aggregat.weather.products import get_product
    from aggregat.weather.simulate import simulate_run

    product = get_product("arome-0025")
    with tempfile.TemporaryDirectory() as tmp:
        files = simulate_run(product, datetime(2026, 11, 28, 6, tzinfo=UTC), Path(tmp),
                             grid=product.grid.crop(46.2, 46.0, 4.0, 4.2), steps=(0, 1),
                             packages=("SP1",))
        data = files[0].read_bytes()
    offsets = message_offsets(data)
    return data[:offsets[3]] if len(offsets) > 3 else data


GRIB1 = (DATA / "arpege_2m_NW_20180501000000.grib").read_bytes()[:3 * 7044]  # 3 messages
GRIB2 = _grib2_sample()
GRIB2_ONE = GRIB2[:message_offsets(GRIB2)[1]]


@st.composite
def mutated(draw, base: bytes, header_bias: int = 0) -> bytes:
    """``base`` after a few flips, cuts, insertions, deletions or splices (``header_bias``:
    positions drawn mostly among the first bytes, where the section headers are)."""
    data = bytearray(base)
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["flip", "set", "truncate", "insert", "delete", "splice",
                                   "length"]))
        n = len(data)
        hi = max(n - 1, 0)
        if header_bias and draw(st.booleans()):
            hi = min(hi, header_bias)
        at = draw(st.integers(0, hi))
        if op == "flip" and n:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == "set" and n:
            data[at] = draw(st.integers(0, 255))
        elif op == "truncate":
            del data[at:]
        elif op == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16) | st.just(b"GRIB"))
        elif op == "delete":
            del data[at:at + draw(st.integers(1, 64))]
        elif op == "splice":  # a copy of another part (messages repeated or overlapping)
            src = draw(st.integers(0, max(n - 1, 0)))
            data[at:at] = data[src:src + draw(st.integers(1, 4096))]
        elif op == "length" and n >= 16:  # rewrite a section-0 length (edition 1 or 2)
            value = draw(st.integers(0, 2 ** 64 - 1))
            if data[7] == 1:
                data[4:7] = (value % 2 ** 24).to_bytes(3, "big")
            else:
                data[8:16] = value.to_bytes(8, "big")
    return bytes(data)


def _sections(message: bytes) -> list[bytes]:
    pos, out = 16, []
    while pos < len(message) - 4:
        length = int.from_bytes(message[pos:pos + 4], "big")
        out.append(message[pos:pos + length])
        pos += length
    return out


@st.composite
def reframed(draw, message: bytes) -> bytes:
    """A GRIB2 message whose sections are shortened, lengthened, dropped, repeated or filled
    with other octets, with consistent section and total lengths: framing passes, and the
    header reader has to cope with sections that are not what their numbers promise."""
    parts = [bytearray(p) for p in _sections(message)]
    for _ in range(draw(st.integers(1, 3))):
        i = draw(st.integers(0, len(parts) - 1))
        op = draw(st.sampled_from(["cut", "grow", "octet", "drop", "repeat"]))
        if op == "cut":
            parts[i] = parts[i][:draw(st.integers(5, max(len(parts[i]) - 1, 5)))]
        elif op == "grow":
            parts[i] += draw(st.binary(min_size=1, max_size=32))
        elif op == "octet" and len(parts[i]) > 5:
            parts[i][draw(st.integers(5, len(parts[i]) - 1))] = draw(st.integers(0, 255))
        elif op == "drop" and len(parts) > 1:
            del parts[i]
        elif op == "repeat":
            parts.insert(i, bytearray(parts[i]))
    for p in parts:
        p[:4] = len(p).to_bytes(4, "big")
    body = b"".join(parts)
    return message[:8] + (16 + len(body) + 4).to_bytes(8, "big") + body + b"7777"


any_grib = mutated(GRIB1) | mutated(GRIB2) | st.binary(max_size=256) | \
    st.binary(max_size=64).map(lambda b: b"GRIB" + b)


def _walk_all_ways(data: bytes, tmp: Path) -> list[int] | None:
    """message_offsets on bytes, a file object and a path agree; None when it raised."""
    results = []
    path = tmp / "fuzz.grib"
    path.write_bytes(data)
    for source in (data, io.BytesIO(data), path):
        try:
            results.append(message_offsets(source, "fuzz.grib"))
        except GribError as exc:
            assert "\n" not in str(exc) and "fuzz.grib" in str(exc)
            results.append(None)
    assert results[0] == results[1] == results[2]
    return results[0]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("fuzz-grib")


@FUZZ
@given(data=any_grib)
@example(data=b"")
@example(data=b"GRIB")
@example(data=GRIB1 + b"7777")
@example(data=GRIB2[:20])
def test_framing_is_a_result_or_one_grib_error(tmp, data):
    offsets = _walk_all_ways(data, tmp)
    if offsets is not None:
        assert offsets[0] == 0 and offsets == sorted(set(offsets))
        assert all(data[o:o + 4] == b"GRIB" for o in offsets)
        assert data.endswith(b"7777")
        assert check_grib_framing(data) == len(offsets)


@FUZZ
@given(data=any_grib)
@example(data=b"\0" * 300)
@example(data=b"pad" + GRIB1[:7044] + b"\0" * 156 + GRIB1[7044:9000])
def test_padded_framing_is_messages_or_one_grib_error(data):
    """extract-file's framing (bytes between messages skipped): every offset found starts a
    whole message ending with 7777, in order, or the file is refused in one line."""
    try:
        offsets = message_offsets(data, "fuzz.grib", padded=True)
    except GribError as exc:
        assert "\n" not in str(exc) and "fuzz.grib" in str(exc)
        return
    assert offsets and offsets == sorted(set(offsets))
    for start in offsets:
        assert data[start:start + 4] == b"GRIB"
        length = (int.from_bytes(data[start + 4:start + 7], "big") if data[start + 7] == 1
                  else int.from_bytes(data[start + 8:start + 16], "big"))
        assert data[start + length - 4:start + length] == b"7777"


@FUZZ
@given(data=reframed(GRIB2_ONE) | mutated(GRIB2_ONE, header_bias=200)
       | st.binary(max_size=200).map(lambda b: b"GRIB\0\0\0\2" + b))
def test_fast_header_is_a_header_or_none(data):
    """A malformed message is never an exception here: None sends it to ecCodes, which names
    the file and message in a GribError."""
    try:
        offsets = message_offsets(data) + [len(data)]
    except GribError:
        offsets = [0, len(data)]  # the whole bytes as one message
    for index, (start, end) in enumerate(zip(offsets, offsets[1:], strict=False)):
        header = fast_header(data[start:end], "fuzz.grib", index, start)
        assert header is None or isinstance(header, MessageHeader)


def test_grib2_sample_is_read_fast():
    offsets = message_offsets(GRIB2) + [len(GRIB2)]
    headers = [fast_header(GRIB2[a:b], "x", i, a)
               for i, (a, b) in enumerate(zip(offsets, offsets[1:], strict=False))]
    assert len(headers) >= 2 and all(h is not None for h in headers)


def test_aggregat_error_is_the_base():
    assert issubclass(GribError, AggregatError)


def _rebuild(message: bytes, number: int, section: bytes) -> bytes:
    parts = [section if p[4] == number else p for p in _sections(message)]
    body = b"".join(parts)
    return message[:8] + (16 + len(body) + 4).to_bytes(8, "big") + body + b"7777"


@pytest.mark.parametrize("number", [1, 3, 4, 5])
def test_regression_a_short_section_goes_to_eccodes(number):
    """Found by the fuzz: a section shorter than its template raised IndexError."""
    section = next(p for p in _sections(GRIB2_ONE) if p[4] == number)
    short = (9).to_bytes(4, "big") + section[4:9]
    assert fast_header(_rebuild(GRIB2_ONE, number, short), "x", 0, 0) is None


def test_regression_an_impossible_date_goes_to_eccodes():
    """Found by the fuzz: month 13 in section 1 raised ValueError."""
    s1 = bytearray(next(p for p in _sections(GRIB2_ONE) if p[4] == 1))
    s1[14] = 13
    assert fast_header(_rebuild(GRIB2_ONE, 1, bytes(s1)), "x", 0, 0) is None
