"""Values of a CCSDS-packed GRIB2 field (template 5.42) at chosen grid points, via libaec.

Why not ecCodes here: ecCodes decodes the stream with libaec (about 40 % of its time on an AROME
0.025° field), then scales all 740 000 values to doubles, expands them over the bitmap and copies
them into Python (the other 60 %). Extraction needs a few hundred points: here libaec decodes the
stream into 16-bit integers and only the points asked for are expanded and scaled, which makes a
field 2.5x cheaper. It calls the libaec that ships with ecCodes' wheel (the same decoder ecCodes
uses); anything unusual (other templates, a bitmap defined elsewhere, no libaec) returns None and
ecCodes decodes the message. Tests compare both paths value for value on generated files.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import struct

import numpy as np

from aggregat.weather.grib import MISSING  # the bitmap-hole marker of every decoder
from aggregat.weather.grib2_header import sections as grib2_sections


class _Stream(ctypes.Structure):
    """``struct aec_stream`` of libaec.h."""

    _fields_ = [
        ("next_in", ctypes.c_void_p), ("avail_in", ctypes.c_size_t),
        ("total_in", ctypes.c_size_t), ("next_out", ctypes.c_void_p),
        ("avail_out", ctypes.c_size_t), ("total_out", ctypes.c_size_t),
        ("bits_per_sample", ctypes.c_uint), ("block_size", ctypes.c_uint),
        ("rsi", ctypes.c_uint), ("flags", ctypes.c_uint), ("state", ctypes.c_void_p),
    ]


def _load_libaec():
    candidates = []
    try:
        import eccodeslib

        base = os.path.dirname(eccodeslib.__file__)
        candidates += [os.path.join(base, sub, "libaec.so") for sub in ("lib64", "lib")]
    except ImportError:
        pass
    found = ctypes.util.find_library("aec")
    if found:
        candidates.append(found)
    for path in candidates:
        try:
            lib = ctypes.CDLL(path)
        except OSError:
            continue
        lib.aec_buffer_decode.argtypes = [ctypes.POINTER(_Stream)]
        lib.aec_buffer_decode.restype = ctypes.c_int
        return lib
    return None


_LIB = _load_libaec()
_AEC_DATA_SIGNED, _AEC_DATA_3BYTE, _AEC_DATA_MSB = 1, 2, 4
# Bitmaps repeat from message to message: position of each grid point among the coded values.
_BITMAPS: dict[int, tuple[bytes, np.ndarray, np.ndarray]] = {}


def available() -> bool:
    return _LIB is not None


def _signed16(b: bytes) -> int:
    value = int.from_bytes(b, "big")
    return -(value & 0x7FFF) if value & 0x8000 else value


def _bitmap_index(bitmap: memoryview, npoints: int) -> tuple[np.ndarray, np.ndarray]:
    raw = bytes(bitmap)
    key = hash(raw)
    cached = _BITMAPS.get(key)
    if cached is not None and cached[0] == raw:
        return cached[1], cached[2]
    present = np.unpackbits(np.frombuffer(raw, dtype=np.uint8))[:npoints].astype(bool)
    coded = np.cumsum(present) - 1
    if len(_BITMAPS) > 8:
        _BITMAPS.clear()
    _BITMAPS[key] = (raw, present, coded)
    return present, coded


def pick(message: bytes, idx: np.ndarray, npoints: int) -> np.ndarray | None:
    """Values at flat grid indices ``idx`` (float64, :data:`MISSING` in bitmap holes), or None
    when this message is not one this fast path reads."""
    if _LIB is None or len(message) < 16 or message[7] != 2:
        return None
    sections = grib2_sections(message)
    if sections is None or not {5, 6, 7} <= sections.keys():
        return None
    s5, s6, s7 = sections[5], sections[6], sections[7]
    if int.from_bytes(s5[9:11], "big") != 42 or len(s5) < 25:
        return None
    ncoded = int.from_bytes(s5[5:9], "big")
    reference = struct.unpack(">f", bytes(s5[11:15]))[0]
    binary, decimal = _signed16(bytes(s5[15:17])), _signed16(bytes(s5[17:19]))
    bits, flags, block, rsi = s5[19], s5[21], s5[22], int.from_bytes(s5[23:25], "big")
    indicator = s6[5]
    if indicator == 0:
        present, coded = _bitmap_index(s6[6:], npoints)
    elif indicator == 255:
        if ncoded != npoints:
            return None
        present, coded = None, None
    else:
        return None  # a bitmap defined in an earlier field of the message: leave it to ecCodes
    if bits == 0:  # a constant field: no data section to decode
        ints = np.zeros(len(idx), dtype=np.float64)
    else:
        if bits > 24 or flags & _AEC_DATA_SIGNED:
            return None
        width = 1 if bits <= 8 else 2 if bits <= 16 else (3 if flags & _AEC_DATA_3BYTE else 4)
        out = np.empty(ncoded * width, dtype=np.uint8)
        data = bytes(s7[5:])
        stream = _Stream(
            next_in=ctypes.cast(ctypes.c_char_p(data), ctypes.c_void_p), avail_in=len(data),
            next_out=out.ctypes.data, avail_out=out.nbytes, bits_per_sample=bits,
            block_size=block, rsi=rsi, flags=flags,
        )
        if _LIB.aec_buffer_decode(ctypes.byref(stream)) != 0 or stream.total_out != out.nbytes:
            return None
        order = ">" if flags & _AEC_DATA_MSB else "<"
        if width == 3:
            b = out.reshape(-1, 3).astype(np.uint32)
            words = (b[:, 0] << 16 | b[:, 1] << 8 | b[:, 2]) if order == ">" else \
                (b[:, 2] << 16 | b[:, 1] << 8 | b[:, 0])
        else:
            words = out.view(f"{order}u{width}")
        positions = idx if coded is None else coded[idx]
        ints = words[np.clip(positions, 0, ncoded - 1)].astype(np.float64)
    values = (reference + ints * 2.0 ** binary) * 10.0 ** (-decimal)
    if present is not None:
        values[~present[idx]] = MISSING
    return values
