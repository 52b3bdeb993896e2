"""Read the identity of a GRIB2 message straight from its bytes.

Why not ecCodes here: creating an ecCodes handle and reading twenty keys costs about a millisecond
per message, more than decoding a small field, and a Météo-France package holds many messages that
are never decoded. The few octets that identify a field (WMO GRIB2 sections 1, 3, 4, 5, 6) are read
here in microseconds; ecCodes still decodes every value. Only the layouts Météo-France uses are
read (grid template 3.0, product templates 4.0 and 4.8, one field per message, catalogue
parameters); anything else returns None and goes through ecCodes, and the tests check both paths
agree on every message of generated and real files.
"""

from __future__ import annotations

from datetime import UTC, datetime

from aggregat.weather.grib import GridGeometry, MessageHeader
from aggregat.weather.products import PARAMETERS

_BY_KEY = {p.key: p for p in PARAMETERS.values()}
_LEVEL_NAMES = {1: "surface", 100: "isobaricInhPa", 101: "meanSea", 103: "heightAboveGround"}
_PACKING = {0: "grid_simple", 2: "grid_complex", 3: "grid_complex_spatial_differencing",
            40: "grid_jpeg", 41: "grid_png", 42: "grid_ccsds"}
# Code table 4.4 -> hours; minutes and seconds are left to ecCodes.
_UNIT_HOURS = {1: 1, 2: 24, 10: 3, 11: 6, 12: 12}
_MISSING4 = 0xFFFFFFFF
# Octets read from each section (templates 3.0, 4.0, 5.x); a shorter section is malformed and
# left to ecCodes, which names it. Template 4.8 needs 58 (checked with it).
_MIN_OCTETS = {1: 19, 3: 72, 4: 34, 5: 20}


def _u(b: bytes, at: int, n: int) -> int:
    """Unsigned big-endian integer at 1-based octet ``at`` of a section."""
    return int.from_bytes(b[at - 1:at - 1 + n], "big")


def _s(b: bytes, at: int, n: int) -> int:
    """GRIB2 signed integer (sign and magnitude, not two's complement)."""
    value = _u(b, at, n)
    sign_bit = 1 << (8 * n - 1)
    return -(value & (sign_bit - 1)) if value & sign_bit else value


def sections(message: bytes) -> dict[int, memoryview] | None:
    """Sections 1-7 of a single-field GRIB2 message, as views (None if a section repeats)."""
    view = memoryview(message)
    out: dict[int, memoryview] = {}
    pos, end = 16, len(message) - 4
    while pos < end:
        length = int.from_bytes(view[pos:pos + 4], "big")
        number = view[pos + 4]
        if length < 5 or number in out or number > 7:
            return None
        out[number] = view[pos:pos + length]
        pos += length
    return out


def _level(s4: bytes) -> int | None:
    level_type = s4[22]
    factor, value = _s(s4, 24, 1), _u(s4, 25, 4)
    if value == _MISSING4 or s4[23] == 0xFF:
        return 0
    level = value * 10.0 ** (-factor)
    if level_type == 100:  # isobaric: Pa in the file, hPa for ecCodes' ``level``
        level /= 100.0
    return int(round(level)) if abs(level - round(level)) < 1e-6 else None


def fast_header(message: bytes, file: str, index: int, offset: int) -> MessageHeader | None:
    """The header of a catalogue field in a GRIB2 message, or None to use ecCodes instead."""
    if len(message) < 32 or message[:4] != b"GRIB" or message[7] != 2:
        return None
    parts = sections(message)
    if parts is None or not {1, 3, 4, 5, 6} <= parts.keys():
        return None
    if any(len(parts[n]) < k for n, k in _MIN_OCTETS.items()):
        return None
    s1, s3, s4, s5, s6 = (parts[n] for n in (1, 3, 4, 5, 6))
    pdt = _u(s4, 8, 2)
    if pdt not in (0, 8) or _u(s3, 13, 2) != 0 or (pdt == 8 and len(s4) < 58):
        return None
    level = _level(s4)
    unit = _UNIT_HOURS.get(s4[17])
    if level is None or unit is None:
        return None
    stat, start = -1, _u(s4, 19, 4) * unit
    end = start
    if pdt == 8:
        if s4[41] != 1 or _UNIT_HOURS.get(s4[48]) is None:
            return None
        stat = s4[46]
        end = start + _u(s4, 50, 4) * _UNIT_HOURS[s4[48]]
    key = (message[6], s4[9], s4[10], s4[22], level, stat)
    param = _BY_KEY.get(key)
    if param is None:
        return None  # not in the catalogue: ecCodes names it
    if _u(s3, 39, 4) not in (0, _MISSING4):
        return None  # a basic angle other than microdegrees
    scan = s3[71]
    geometry = GridGeometry(
        lat_first=_s(s3, 47, 4) / 1e6, lon_first=_s(s3, 51, 4) / 1e6,
        lat_last=_s(s3, 56, 4) / 1e6, lon_last=_s(s3, 60, 4) / 1e6,
        dlat=_u(s3, 68, 4) / 1e6, dlon=_u(s3, 64, 4) / 1e6,
        ni=_u(s3, 31, 4), nj=_u(s3, 35, 4),
        j_positive=bool(scan & 0x40), i_negative=bool(scan & 0x80),
    )
    if scan & 0x20 or geometry.ni * geometry.nj != _u(s3, 7, 4):
        return None  # column-major or irregular: leave it to ecCodes
    try:
        run = datetime(_u(s1, 13, 2), s1[14], s1[15], s1[16], s1[17], s1[18], tzinfo=UTC)
    except ValueError:
        return None  # an impossible date: ecCodes judges the message
    drt = _u(s5, 10, 2)
    bits = s5[19] if drt in (0, 2, 3, 40, 41, 42) else 0
    return MessageHeader(
        file=file, index=index, offset=offset, length=len(message), edition=2,
        param=param.name, short_name=param.name, key=key,
        level_name=_LEVEL_NAMES.get(key[3], str(key[3])), level=level,
        start_step=start, end_step=end, run_time=run, units=param.grib_units,
        packing=_PACKING.get(drt, f"template5.{drt}"), bits=bits, grid_type="regular_ll",
        geometry=geometry,
    )
