"""Where weather is extracted: sites (points from a CSV) and areas (GeoJSON polygons or boxes).

Sites CSV: ``id, name, lat, lon`` and optionally ``weight`` and ``group``. Areas: a GeoJSON
FeatureCollection whose features have an ``id`` (or ``properties.id``) and a Polygon/MultiPolygon
geometry, or only a ``bbox`` ``[lon_min, lat_min, lon_max, lat_max]``.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from aggregat.errors import InputError

REQUIRED_COLUMNS = ("id", "name", "lat", "lon")


@dataclass(frozen=True)
class Area:
    """A polygon (rings of (lon, lat)); its value is the mean over the grid points inside."""

    id: str
    rings: tuple[tuple[tuple[float, float], ...], ...]

    @property
    def bbox(self) -> tuple[float, float, float, float]:
        """(lon_min, lat_min, lon_max, lat_max)."""
        lons = [p[0] for ring in self.rings for p in ring]
        lats = [p[1] for ring in self.rings for p in ring]
        return min(lons), min(lats), max(lons), max(lats)


@dataclass(frozen=True)
class Locations:
    """Sites and areas to extract, in a stable order (sites first)."""

    site_ids: tuple[str, ...] = ()
    lats: np.ndarray = field(default_factory=lambda: np.zeros(0))
    lons: np.ndarray = field(default_factory=lambda: np.zeros(0))
    areas: tuple[Area, ...] = ()
    source: str = ""

    @property
    def ids(self) -> list[str]:
        return list(self.site_ids) + [a.id for a in self.areas]

    def __len__(self) -> int:
        return len(self.site_ids) + len(self.areas)

    def cache_key(self) -> tuple:
        return (self.site_ids, self.lats.tobytes(), self.lons.tobytes(), self.areas)

    @classmethod
    def points(cls, ids: list[str], lats: list[float], lons: list[float]) -> Locations:
        return cls(tuple(ids), np.asarray(lats, dtype=float), np.asarray(lons, dtype=float))


def load_sites(path: str | Path) -> tuple[Locations, dict[str, dict[str, object]]]:
    """Read a sites CSV: the locations, and each site's name, weight and group."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"file {path} (site list) does not exist: set `sites` in "
                         "aggregat.toml or pass sites", param="sites")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            return _read_sites(csv.DictReader(fh), path)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path}: byte {exc.start} is not UTF-8 text; save the file as UTF-8"
                         ) from None
    except csv.Error as exc:
        raise InputError(f"{path}: not a readable CSV ({exc})") from None


def _read_sites(reader: csv.DictReader, path: Path
                ) -> tuple[Locations, dict[str, dict[str, object]]]:
    """The rows of an open sites CSV (see :func:`load_sites`)."""
    header = [h.strip().lower() for h in (reader.fieldnames or [])]
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    if missing:
        raise InputError(f"{path}: missing column(s) {', '.join(missing)}; "
                         f"expected id,name,lat,lon[,weight,group]")
    reader.fieldnames = header
    ids: list[str] = []
    lats: list[float] = []
    lons: list[float] = []
    attrs: dict[str, dict[str, object]] = {}
    for line, row in enumerate(reader, start=2):
        site_id = (row.get("id") or "").strip()
        if not site_id:
            raise InputError(f"{path} line {line}: empty id")
        if site_id in attrs:
            raise InputError(f"{path} line {line}: duplicate site id {site_id!r}")
        lat = _number(row.get("lat"), path, line, "lat")
        lon = _number(row.get("lon"), path, line, "lon")
        if not -90 <= lat <= 90 or not -180 <= lon <= 360:
            raise InputError(f"{path} line {line}: site {site_id!r} has lat={lat} lon={lon}, "
                             "outside the globe (lat -90..90, lon -180..360)")
        weight = _number(row.get("weight") or "1", path, line, "weight")
        ids.append(site_id)
        lats.append(lat)
        lons.append(lon)
        attrs[site_id] = {"name": (row.get("name") or "").strip(), "weight": weight,
                          "group": (row.get("group") or "").strip() or None}
    if not ids:
        raise InputError(f"{path}: no sites (the file has a header but no rows)")
    return Locations(tuple(ids), np.array(lats), np.array(lons), source=str(path)), attrs


def _number(text: str | None, path: Path, line: int, column: str) -> float:
    try:
        value = float((text or "").strip())
    except ValueError:
        raise InputError(f"{path} line {line}: column {column} is {text!r}, not a number") from None
    if not math.isfinite(value):
        raise InputError(f"{path} line {line}: column {column} is {text!r}, not a finite number")
    return value


def load_areas(path: str | Path) -> tuple[Area, ...]:
    """Read areas from a GeoJSON FeatureCollection (polygons, multipolygons or bboxes)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"areas file {path} does not exist: set `areas` in aggregat.toml or "
                         "fix the path")
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    features = doc.get("features") if isinstance(doc, dict) else None
    if not isinstance(features, list):
        raise InputError(f"{path}: expected a GeoJSON FeatureCollection with a 'features' list")
    areas: list[Area] = []
    seen: set[str] = set()
    for n, feature in enumerate(features):
        props = feature.get("properties") or {} if isinstance(feature, dict) else None
        if not isinstance(props, dict) or not isinstance(feature.get("geometry") or {}, dict):
            raise InputError(f"{path} feature #{n}: not a GeoJSON feature (an object with "
                             "id, properties and geometry objects)")
        area_id = str(feature.get("id") or props.get("id") or "").strip()
        if not area_id:
            raise InputError(f"{path} feature #{n}: no id (set feature.id or properties.id)")
        if area_id in seen:
            raise InputError(f"{path} feature #{n}: duplicate area id {area_id!r}")
        seen.add(area_id)
        areas.append(Area(area_id, _rings(feature, path, area_id)))
    return tuple(areas)


def _rings(feature: dict, path: Path, area_id: str) -> tuple[tuple[tuple[float, float], ...], ...]:
    geometry = feature.get("geometry")
    bbox = feature.get("bbox") or (geometry or {}).get("bbox")
    if geometry is None and bbox:
        try:
            x0, y0, x1, y1 = (float(v) for v in bbox)
        except (TypeError, ValueError):
            raise InputError(f"{path} area {area_id!r}: bbox must be "
                             "[lon_min, lat_min, lon_max, lat_max]") from None
        if not all(math.isfinite(v) for v in (x0, y0, x1, y1)) or x0 >= x1 or y0 >= y1:
            raise InputError(f"{path} area {area_id!r}: empty bbox {bbox}")
        return (((x0, y0), (x1, y0), (x1, y1), (x0, y1), (x0, y0)),)
    kind = (geometry or {}).get("type")
    coords = (geometry or {}).get("coordinates")
    if kind == "Polygon":
        polygons = [coords]
    elif kind == "MultiPolygon":
        polygons = coords
    else:
        raise InputError(f"{path} area {area_id!r}: geometry {kind!r} is not a Polygon, "
                         "MultiPolygon or bbox")
    try:
        # Outer rings only: holes are rare for sites' areas and would need even-odd bookkeeping.
        rings = tuple(tuple(_point(p) for p in poly[0]) for poly in polygons)
    except (TypeError, ValueError, IndexError, KeyError):
        raise InputError(f"{path} area {area_id!r}: malformed coordinates") from None
    if not rings or any(len(r) < 3 or not np.isfinite(r).all() for r in rings):
        raise InputError(f"{path} area {area_id!r}: a ring needs at least 3 finite (lon, lat) "
                         "points")
    return rings


def _point(p: object) -> tuple[float, float]:
    """(lon, lat) of a GeoJSON position: numbers only (a string "12" is not two digits)."""
    if not isinstance(p, list | tuple) or len(p) < 2 or not all(
            isinstance(v, int | float) and not isinstance(v, bool) for v in p[:2]):
        raise ValueError(p)
    return float(p[0]), float(p[1])


def load_locations(sites: str | Path | None, areas: str | Path | None = None) -> Locations:
    """Sites and areas together; at least one of them must be given."""
    if not sites and not areas:
        raise InputError("no site list: set `sites` (CSV id,name,lat,lon) in aggregat.toml or "
                         "pass sites", param="sites")
    located = load_sites(sites)[0] if sites else Locations()
    extra = load_areas(areas) if areas else ()
    ids = set(located.site_ids)
    clash = [a.id for a in extra if a.id in ids]
    if clash:
        raise InputError(f"area id {clash[0]!r} is also a site id: ids must be unique across "
                         f"{sites} and {areas}")
    return Locations(located.site_ids, located.lats, located.lons, tuple(extra), located.source)
