"""ecCodes access: read message headers without decoding data, identify fields, decode what is needed.

Identity follows ARCHITECTURE: GRIB2 messages are matched by discipline / category / number / level /
statistical processing (short names depend on decoder tables; Météo-France ``tp`` can decode as
``unknown``); GRIB1 messages of any centre are matched by ecCodes' ``paramId``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import eccodes
import numpy as np

from aggregat.errors import GribError
from aggregat.weather.products import PARAMETERS, Parameter

# Decoded missing points get this value; no physical field reaches it (the default 9999 can).
_MISSING = 1.0e30

# GRIB1 / any-centre identification by ecCodes paramId (also used when a GRIB2 key tuple is unknown).
_PARAM_IDS: dict[int, str] = {
    167: "t2m", 157: "rh2m", 260242: "rh2m", 165: "u10", 166: "v10", 10: "ws10", 207: "ws10",
    49: "gust10", 228029: "gust10", 151: "msl", 169: "ssrd", 228: "tp", 228228: "tp",
    164: "tcc", 228164: "tcc", 186: "lcc", 3073: "lcc", 187: "mcc", 3074: "mcc", 188: "hcc",
    3075: "hcc",
}
_BY_KEY: dict[tuple, Parameter] = {p.key: p for p in PARAMETERS.values()}
# Precipitation in metres (ECMWF) instead of kg m-2: scale to mm.
_UNIT_SCALE = {("tp", "m"): 1000.0}


@dataclass(frozen=True)
class GridGeometry:
    """Regular lat/lon geometry as a message declares it."""

    lat_first: float
    lon_first: float
    lat_last: float
    lon_last: float
    dlat: float
    dlon: float
    ni: int
    nj: int
    j_positive: bool  # rows run south -> north
    i_negative: bool  # columns run east -> west


@dataclass(frozen=True)
class MessageHeader:
    """What selection and validation need, read without decoding the data section."""

    file: str
    index: int  # position in the file, from 0
    offset: int
    length: int
    edition: int
    param: str | None  # aggregat parameter name, None if not in the catalogue
    short_name: str
    key: tuple  # (discipline, category, number, level_type, level, statistic) or ("id", paramId, ...)
    level_name: str
    level: int
    start_step: int
    end_step: int
    run_time: datetime
    units: str
    packing: str
    bits: int
    grid_type: str
    geometry: GridGeometry | None

    @property
    def label(self) -> str:
        name = self.param or self.short_name
        return f"{name}@{self.level_name}{self.level} step {self.start_step}-{self.end_step}h"

    @property
    def unit_scale(self) -> float:
        return _UNIT_SCALE.get((self.param or "", self.units), 1.0)


def _get(handle: int, key: str, default=None):
    try:
        if not eccodes.codes_is_defined(handle, key):
            return default
        return eccodes.codes_get(handle, key)
    except eccodes.CodesInternalError:
        return default


def _long(handle: int, key: str, default: int = -1) -> int:
    """A key as its number (code-table keys like typeOfFirstFixedSurface decode as text otherwise)."""
    try:
        if not eccodes.codes_is_defined(handle, key):
            return default
        return int(eccodes.codes_get_long(handle, key))
    except (eccodes.CodesInternalError, ValueError):
        return default


def _geometry(handle: int) -> GridGeometry | None:
    if _get(handle, "gridType") != "regular_ll":
        return None
    g = eccodes.codes_get_double
    return GridGeometry(
        lat_first=g(handle, "latitudeOfFirstGridPointInDegrees"),
        lon_first=g(handle, "longitudeOfFirstGridPointInDegrees"),
        lat_last=g(handle, "latitudeOfLastGridPointInDegrees"),
        lon_last=g(handle, "longitudeOfLastGridPointInDegrees"),
        dlat=g(handle, "jDirectionIncrementInDegrees"),
        dlon=g(handle, "iDirectionIncrementInDegrees"),
        ni=eccodes.codes_get_long(handle, "Ni"),
        nj=eccodes.codes_get_long(handle, "Nj"),
        j_positive=bool(eccodes.codes_get_long(handle, "jScansPositively")),
        i_negative=bool(eccodes.codes_get_long(handle, "iScansNegatively")),
    )


def read_header(handle: int, file: str, index: int) -> MessageHeader:
    """Header of an open ecCodes handle (no data decoding)."""
    edition = eccodes.codes_get_long(handle, "edition")
    param: Parameter | None = None
    if edition == 2:
        pdt = _long(handle, "productDefinitionTemplateNumber", 0)
        stat = _long(handle, "typeOfStatisticalProcessing") if pdt in (8, 11, 12) else -1
        key: tuple = (
            _long(handle, "discipline"), _long(handle, "parameterCategory"),
            _long(handle, "parameterNumber"), _long(handle, "typeOfFirstFixedSurface"),
            _long(handle, "level", 0), stat,
        )
        param = _BY_KEY.get(key)
    else:
        key = ("id", _get(handle, "paramId", 0), _get(handle, "typeOfLevel", ""),
               _get(handle, "level", 0), _get(handle, "stepType", ""))
    short_name = str(_get(handle, "shortName", "unknown"))
    if param is None:
        name = _PARAM_IDS.get(_long(handle, "paramId", 0))
        param = PARAMETERS.get(name) if name else None
    date, time = int(_get(handle, "dataDate", 19700101)), int(_get(handle, "dataTime", 0))
    run = datetime(date // 10000, date // 100 % 100, date % 100, time // 100, time % 100,
                   tzinfo=UTC)
    return MessageHeader(
        file=file, index=index, offset=int(_get(handle, "offset", 0)),
        length=int(_get(handle, "totalLength", 0)), edition=edition,
        param=param.name if param else None, short_name=short_name, key=key,
        level_name=str(_get(handle, "typeOfLevel", "")), level=int(_get(handle, "level", 0) or 0),
        start_step=int(_get(handle, "startStep", 0)), end_step=int(_get(handle, "endStep", 0)),
        run_time=run, units=str(_get(handle, "units", "")),
        packing=str(_get(handle, "packingType", "")), bits=int(_get(handle, "bitsPerValue", 0) or 0),
        grid_type=str(_get(handle, "gridType", "")), geometry=_geometry(handle),
    )


def decode(handle: int) -> np.ndarray:
    """Decoded values as float64 with bitmap-missing points as NaN."""
    if _get(handle, "bitmapPresent", 0):
        eccodes.codes_set_double(handle, "missingValue", _MISSING)
        values = eccodes.codes_get_values(handle)
        values[values >= _MISSING * 0.5] = np.nan
        return values
    return eccodes.codes_get_values(handle)


def iter_messages(fh: BinaryIO, name: str, headers_only: bool = False) -> Iterator[tuple[int, int]]:
    """Yield (index, handle) for each message of an open file; the caller releases each handle.

    A truncated or corrupt message raises GribError naming the file and message.
    """
    index = 0
    while True:
        try:
            handle = eccodes.codes_grib_new_from_file(fh, headers_only=headers_only)
        except (eccodes.CodesInternalError, EOFError) as exc:
            raise GribError(f"{name}: message #{index} is truncated or corrupt ({exc}); "
                            "re-fetch the file") from None
        if handle is None:
            return
        yield index, handle
        index += 1


def scan_file(path: str) -> list[MessageHeader]:
    """Headers of every message in a file, without decoding any data."""
    headers = []
    with open(path, "rb") as fh:
        for index, handle in iter_messages(fh, path, headers_only=True):
            try:
                headers.append(read_header(handle, path, index))
            finally:
                eccodes.codes_release(handle)
    return headers


def valid_time(header: MessageHeader) -> datetime:
    return header.run_time + timedelta(hours=header.end_step)
