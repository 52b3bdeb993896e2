"""ecCodes access: read headers without decoding data, identify fields, decode what is needed.

Identity follows ARCHITECTURE: GRIB2 messages are matched by discipline / category / number /
level / statistical processing (short names depend on decoder tables; Météo-France ``tp`` can
decode as ``unknown``); GRIB1 messages of any centre are matched by ecCodes' ``paramId``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

import eccodes
import numpy as np

from aggregat.errors import CorruptFileError
from aggregat.weather.products import PARAMETERS, Parameter

# Decoded missing points get this value; no physical field reaches it (the default 9999 can).
MISSING = 1.0e30

# GRIB1 / any-centre identification by ecCodes paramId (also when a GRIB2 key tuple is unknown).
_PARAM_IDS: dict[int, str] = {
    167: "t2m", 168: "d2m", 157: "rh2m", 260242: "rh2m", 165: "u10", 166: "v10", 10: "ws10",
    207: "ws10",
    49: "gust10", 228029: "gust10", 151: "msl", 169: "ssrd", 228: "tp", 228228: "tp",
    164: "tcc", 228164: "tcc", 186: "lcc", 3073: "lcc", 187: "mcc", 3074: "mcc", 188: "hcc",
    3075: "hcc",
}
_BY_KEY: dict[tuple, Parameter] = {p.key: p for p in PARAMETERS.values()}
# ECMWF units: precipitation in metres instead of kg m-2 (to mm), cloud cover as a fraction (to %).
_UNIT_SCALE = {("tp", "m"): 1000.0, ("tcc", "(0 - 1)"): 100.0, ("lcc", "(0 - 1)"): 100.0,
               ("mcc", "(0 - 1)"): 100.0, ("hcc", "(0 - 1)"): 100.0}


@dataclass(frozen=True)
class GridGeometry:
    """Regular lat/lon geometry as a message declares it (in the rotated frame for a rotated
    lat/lon grid, whose ``south_pole`` is then set)."""

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
    south_pole: tuple[float, float] | None = None  # (lat, lon) of a rotated grid's south pole


@dataclass(frozen=True)
class MessageHeader:
    """What selection and validation need, read without decoding the data section."""

    file: str
    index: int  # position in the file, from 0
    offset: int
    length: int  # -1 when not read
    edition: int
    param: str | None  # aggregat parameter name, None if not in the catalogue
    short_name: str
    key: tuple  # (discipline, category, number, level_type, level, statistic), or GRIB1 keys
    level_name: str
    level: int
    start_step: int
    end_step: int
    run_time: datetime
    units: str
    packing: str
    bits: int
    grid_type: str
    geometry: GridGeometry | None  # None: not a (rotated) regular lat/lon grid
    member: int | None = None  # ensemble member (perturbationNumber / number), None: not one

    @property
    def label(self) -> str:
        name = self.param or self.short_name
        member = f" member {self.member}" if self.member is not None else ""
        return (f"{name}@{self.level_name}{self.level} step {self.start_step}-{self.end_step}h"
                f"{member}")

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
    """A key as its number (code-table keys such as typeOfFirstFixedSurface read as text else)."""
    try:  # no codes_is_defined first: one call instead of two on the hot path
        return int(eccodes.codes_get_long(handle, key))
    except (eccodes.CodesInternalError, ValueError):
        return default


# Grids whose points are a regular lat/lon lattice (in a rotated frame for rotated_ll): sampled
# from their header's geometry, bilinear included. Other grids go through ecCodes' coordinates.
LATLON_GRIDS = ("regular_ll", "rotated_ll")


def _geometry(handle: int, grid_type: str = "regular_ll") -> GridGeometry | None:
    g = eccodes.codes_get_double
    pole = None
    if grid_type == "rotated_ll":
        if abs(float(_get(handle, "angleOfRotationInDegrees", 0.0))) > 1e-9:
            return None  # a rotation about the pole axis too: sampled from ecCodes' coordinates
        pole = (g(handle, "latitudeOfSouthernPoleInDegrees"),
                g(handle, "longitudeOfSouthernPoleInDegrees"))
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
        south_pole=pole,
    )


# Code-table numbers -> ecCodes' packingType / gridType names, so the hot path reads numbers only.
_PACKING = {0: "grid_simple", 2: "grid_complex", 3: "grid_complex_spatial_differencing",
            40: "grid_jpeg", 41: "grid_png", 42: "grid_ccsds", 50: "spectral_simple",
            51: "spectral_complex"}
# Text keys (shortName, units, ...) cost milliseconds each in ecCodes (concept tables): they are
# read once per kind of message and cached, keyed by the numbers that identify it.
_TEXT_CACHE: dict[tuple, tuple] = {}


def _texts(handle: int, signature: tuple) -> tuple:
    """(aggregat parameter, shortName, typeOfLevel, units, packingType, gridType) for a kind."""
    cached = _TEXT_CACHE.get(signature)
    if cached is None:
        name = _PARAM_IDS.get(_long(handle, "paramId", 0))
        cached = (PARAMETERS.get(name) if name else None, str(_get(handle, "shortName", "unknown")),
                  str(_get(handle, "typeOfLevel", "")), str(_get(handle, "units", "")),
                  str(_get(handle, "packingType", "")), str(_get(handle, "gridType", "")))
        if len(_TEXT_CACHE) > 4096:
            _TEXT_CACHE.clear()
        _TEXT_CACHE[signature] = cached
    return cached


def read_header(handle: int, file: str, index: int, offset: int = -1,
                geometry: bool = True) -> MessageHeader:
    """Header of an open ecCodes handle (no data decoding; numeric keys, text keys cached).

    ``geometry=False`` skips the grid keys (read them with :func:`with_geometry` for the
    messages that will be decoded).
    """
    edition = _long(handle, "edition", 0)
    level = _long(handle, "level", 0)
    if edition == 2:
        pdt = _long(handle, "productDefinitionTemplateNumber", 0)
        stat = _long(handle, "typeOfStatisticalProcessing") if pdt in (8, 11, 12) else -1
        key: tuple = (
            _long(handle, "discipline"), _long(handle, "parameterCategory"),
            _long(handle, "parameterNumber"), _long(handle, "typeOfFirstFixedSurface"),
            level, stat,
        )
        packing_code = _long(handle, "dataRepresentationTemplateNumber")
        # Ensemble templates (4.1, 4.11) number their members; deterministic ones do not.
        member = _long(handle, "perturbationNumber") if pdt in (1, 11) else None
        signature = (2, _long(handle, "centre"), *key, packing_code,
                     _long(handle, "gridDefinitionTemplateNumber"))
    else:
        key = ("grib1", _long(handle, "table2Version"), _long(handle, "indicatorOfParameter"),
               _long(handle, "indicatorOfTypeOfLevel"), level, _long(handle, "timeRangeIndicator"))
        packing_code = None
        member = _grib1_member(handle)
        signature = (1, _long(handle, "centre"), *key, _long(handle, "dataRepresentationType"),
                     _long(handle, "complexPacking"))
    fallback, short_name, level_name, units, packing, grid_type = _texts(handle, signature)
    param = _BY_KEY.get(key) if edition == 2 else None
    param = param or fallback
    date, time = _long(handle, "dataDate", 19700101), _long(handle, "dataTime", 0)
    run = datetime(date // 10000, date // 100 % 100, date % 100, time // 100, time % 100,
                   tzinfo=UTC)
    return MessageHeader(
        file=file, index=index, offset=offset if offset >= 0 else _long(handle, "offset", 0),
        length=-1, edition=edition,
        param=param.name if param else None, short_name=short_name, key=key,
        level_name=level_name, level=level,
        start_step=_long(handle, "startStep", 0), end_step=_long(handle, "endStep", 0),
        run_time=run, units=units, packing=_PACKING.get(packing_code, packing),
        bits=_long(handle, "bitsPerValue", 0), grid_type=grid_type,
        geometry=_geometry(handle, grid_type) if geometry and grid_type in LATLON_GRIDS else None,
        member=member if member is None or member >= 0 else None,
    )


def _grib1_member(handle: int) -> int | None:
    """An ECMWF GRIB1 ensemble member's number (control or perturbed forecast), else None.

    Deterministic ECMWF fields (ERA5, HRES) carry ``number`` 0 too: only the MARS type tells.
    """
    number = _long(handle, "number")  # defined only by ECMWF-style local sections
    if number < 0:
        return None
    return number if str(_get(handle, "marsType", "")) in ("cf", "pf") else None


def with_geometry(handle: int, header: MessageHeader) -> MessageHeader:
    """``header`` with its grid geometry (None unless the grid is a (rotated) lat/lon one)."""
    if header.geometry is not None or header.grid_type not in LATLON_GRIDS:
        return header
    return replace(header, geometry=_geometry(handle, header.grid_type))


def grid_points(handle: int) -> tuple[np.ndarray, np.ndarray]:
    """Latitudes and longitudes of every point, in the order of the decoded values, as ecCodes
    computes them for any grid it knows (Lambert, Mercator, polar stereographic, Gaussian...).

    Raises ``eccodes.CodesInternalError`` when it cannot (spectral or unstructured grids, a grid
    section that contradicts itself).
    """
    return (eccodes.codes_get_array(handle, "latitudes"),
            eccodes.codes_get_array(handle, "longitudes"))


def grid_fingerprint(handle: int) -> str:
    """ecCodes' MD5 of the grid section: equal for messages on the same grid."""
    return str(eccodes.codes_get(handle, "md5GridSection"))


def decode_raw(handle: int) -> np.ndarray:
    """Decoded values as float64; bitmap-missing points hold :data:`MISSING` (>= 1e29).

    Turning them into NaN is left to the caller, on the few points it keeps: a pass over a whole
    AROME field costs as much as a tenth of its decoding.
    """
    if _long(handle, "bitmapPresent", 0) > 0:
        eccodes.codes_set_double(handle, "missingValue", MISSING)
    return eccodes.codes_get_values(handle)


def decode(handle: int) -> np.ndarray:
    """Decoded values as float64 with bitmap-missing points as NaN."""
    values = decode_raw(handle)
    values[values >= MISSING * 0.5] = np.nan
    return values


def iter_messages(fh: BinaryIO, name: str, headers_only: bool = False) -> Iterator[tuple[int, int]]:
    """Yield (index, handle) for each message of an open file; the caller releases each handle.

    A truncated or corrupt message raises CorruptFileError naming the file and message.
    """
    index = 0
    while True:
        try:
            handle = eccodes.codes_grib_new_from_file(fh, headers_only=headers_only)
        except (eccodes.CodesInternalError, EOFError) as exc:
            raise CorruptFileError(f"{name}: message #{index} is truncated or corrupt ({exc}); "
                            "re-fetch the file") from None
        if handle is None:
            return
        yield index, handle
        index += 1


def check_geometry(geom: GridGeometry, name: str) -> None:
    """Raise CorruptFileError naming ``name`` if a regular grid's header contradicts itself.

    Coordinates must be on Earth, and the last point must lie where the first point plus
    (count - 1) increments puts it; a flipped byte in section 3 breaks one of these. The tolerance
    allows GRIB1's millidegree rounding of increments (0.0005 degree per step).
    """
    problem = None
    if geom.ni < 1 or geom.nj < 1:
        problem = f"{geom.ni} x {geom.nj} points"
    elif not (0.0 < geom.dlat <= 90.0 and 0.0 < geom.dlon <= 360.0):
        problem = f"increments {geom.dlat} x {geom.dlon} degrees"
    elif max(abs(geom.lat_first), abs(geom.lat_last)) > 90.0 + 1e-6:
        problem = f"latitudes {geom.lat_first}..{geom.lat_last}"
    elif geom.dlon * (geom.ni - 1) > 360.0 + geom.dlon:
        problem = f"{geom.ni} columns of {geom.dlon} degrees"
    else:
        lat_sign = 1.0 if geom.j_positive else -1.0
        lon_sign = -1.0 if geom.i_negative else 1.0
        lat_gap = geom.lat_last - (geom.lat_first + lat_sign * (geom.nj - 1) * geom.dlat)
        lon_end = geom.lon_first + lon_sign * (geom.ni - 1) * geom.dlon
        lon_gap = (geom.lon_last - lon_end + 180.0) % 360.0 - 180.0
        if abs(lat_gap) > 0.5 * geom.dlat + 5e-4 * geom.nj:
            problem = (f"latitudes {geom.lat_first}..{geom.lat_last} do not match {geom.nj} rows "
                       f"of {geom.dlat} degrees")
        elif abs(lon_gap) > 0.5 * geom.dlon + 5e-4 * geom.ni:
            problem = (f"longitudes {geom.lon_first}..{geom.lon_last} do not match {geom.ni} "
                       f"columns of {geom.dlon} degrees")
    if problem:
        raise CorruptFileError(f"{name}: the grid header is corrupt ({problem}); re-fetch the "
                               "file (the sites are not at fault)")


def valid_time(header: MessageHeader) -> datetime:
    return header.run_time + timedelta(hours=header.end_step)
