"""Grid -> locations: indices and weights computed once per grid, applied to every decoded field.

ecCodes' own nearest-point search costs ~260 ms per point on big grids; computing indices once
with numpy and indexing each decoded array costs microseconds, so extraction time is decode time.
A sampler is a small sparse matrix in CSR form (flat grid indices, weights, row starts).

Regular lat/lon grids (and rotated ones, through the sites' rotated coordinates) are sampled from
their header: nearest, bilinear or areas. Any other grid ecCodes knows (Lambert, Mercator, polar
stereographic, Gaussian...) is sampled from the coordinates ecCodes gives for every point: nearest
through a KD-tree on the unit sphere (SciPy), areas through the points inside their polygons.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from matplotlib.path import Path as PolygonPath
from scipy.spatial import cKDTree

from aggregat.errors import ConfigError, InputError
from aggregat.weather.grib import MISSING, GridGeometry
from aggregat.weather.sites import Area, Locations

METHODS = ("nearest", "bilinear")
MISSING_MARK = MISSING * 0.5  # any decoded value above it is a bitmap hole


@dataclass(frozen=True)
class Sampler:
    """Sparse weights from grid points to locations."""

    idx: np.ndarray  # flat grid indices
    weights: np.ndarray  # same length as idx
    starts: np.ndarray  # row i uses idx[starts[i]:starts[i+1]]
    strict: np.ndarray  # per location: any missing point makes it NaN (points); else mean of valid
    single: bool  # every location uses exactly one point (nearest): fast path

    def sample(self, values: np.ndarray) -> np.ndarray:
        """Values at the locations (float32); NaN where the needed grid points are missing
        (NaN in ``values``, or the decoder's missing marker, >= 1e29)."""
        return self.reduce(values[self.idx])

    def reduce(self, picked: np.ndarray) -> np.ndarray:
        """Like :meth:`sample`, from the values already picked at ``idx`` (a float copy)."""
        picked[picked >= MISSING_MARK] = np.nan
        if self.single:
            return picked.astype(np.float32)
        valid = ~np.isnan(picked)
        w = np.where(valid, self.weights, 0.0)
        sums = np.add.reduceat(np.where(valid, picked, 0.0) * w, self.starts[:-1])
        wsum = np.add.reduceat(w, self.starts[:-1])
        nvalid = np.add.reduceat(valid.astype(np.int32), self.starts[:-1])
        counts = np.diff(self.starts)
        with np.errstate(invalid="ignore", divide="ignore"):
            out = sums / wsum
        out[(wsum <= 0) | (self.strict & (nvalid < counts))] = np.nan
        return out.astype(np.float32)


def _fractional_index(geom: GridGeometry, lats: np.ndarray, lons: np.ndarray):
    """Fractional (column, row) of each point, and whether the grid wraps around the globe."""
    span = geom.dlon * geom.ni
    wraps = abs(span - 360.0) < geom.dlon * 0.5
    dx = (lons - geom.lon_first) % 360.0  # degrees east of the first column
    if geom.i_negative:
        dx = (geom.lon_first - lons) % 360.0
    col = dx / geom.dlon
    if not wraps:
        # A point just west of the first column has dx close to 360: bring it back as negative.
        col = np.where(col > geom.ni - 0.5 + (360.0 / geom.dlon - geom.ni) / 2,
                       col - 360.0 / geom.dlon, col)
    north = (geom.lat_first - lats) / geom.dlat
    row = (lats - geom.lat_first) / geom.dlat if geom.j_positive else north
    return col, row, wraps


def to_rotated(lats: np.ndarray, lons: np.ndarray, south_pole: tuple[float, float],
               angle: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """Geographic (lat, lon) in degrees -> the frame of a rotated grid whose south pole is at
    ``south_pole`` (lat, lon), as ecCodes and WMO define it (rotated longitudes in -180..180).

    Hand-written (no projection library is a dependency): a turn about the polar axis by the
    pole's longitude, then about the y axis by 90 degrees + the pole's latitude.
    """
    la = np.radians(np.asarray(lats, dtype=float))
    lo = np.radians(np.asarray(lons, dtype=float) - south_pole[1])
    x, y, z = np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)
    t = np.radians(90.0 + south_pole[0])
    xr = np.cos(t) * x + np.sin(t) * z
    zr = -np.sin(t) * x + np.cos(t) * z
    rlon = (np.degrees(np.arctan2(y, xr)) - angle + 180.0) % 360.0 - 180.0
    return np.degrees(np.arcsin(np.clip(zr, -1.0, 1.0))), rlon


def _rotated_locations(locations: Locations, south_pole: tuple[float, float]) -> Locations:
    """``locations`` in a rotated grid's frame (areas: their vertices rotated)."""
    lats, lons = to_rotated(locations.lats, locations.lons, south_pole)
    areas = []
    for area in locations.areas:
        rings = []
        for ring in area.rings:
            pts = np.asarray(ring, dtype=float)
            rlat, rlon = to_rotated(pts[:, 1], pts[:, 0], south_pole)
            rings.append(tuple(zip(rlon.tolist(), rlat.tolist(), strict=True)))
        areas.append(Area(area.id, tuple(rings)))
    return replace(locations, lats=lats, lons=lons, areas=tuple(areas))


def _check_method(method: str) -> None:
    if method not in METHODS:
        raise ConfigError(f"extraction method {method!r} is unknown: use one of "
                          f"{', '.join(METHODS)}")


def build_sampler(geom: GridGeometry, locations: Locations, method: str = "nearest",
                  grid_name: str = "the grid") -> Sampler:
    """Indices and weights for ``locations`` on ``geom``; a location outside is a ConfigError."""
    _check_method(method)
    idx_parts: list[np.ndarray] = []
    w_parts: list[np.ndarray] = []
    counts: list[int] = []
    strict: list[bool] = []
    original = locations
    if geom.south_pole is not None:
        locations = _rotated_locations(locations, geom.south_pole)
    col, row, wraps = _fractional_index(geom, locations.lats, locations.lons)
    tol = 0.5 if method == "nearest" else 1e-6
    outside = (row < -tol) | (row > geom.nj - 1 + tol)
    if not wraps:
        outside |= (col < -tol) | (col > geom.ni - 1 + tol)
    if outside.any():
        k = int(np.argmax(outside))
        frame = "rotated " if geom.south_pole is not None else ""
        raise ConfigError(
            f"site {original.site_ids[k]!r} (lat {original.lats[k]}, lon {original.lons[k]}) is "
            f"outside {grid_name} ({frame}lat {min(geom.lat_first, geom.lat_last)}.."
            f"{max(geom.lat_first, geom.lat_last)}, lon {geom.lon_first}..{geom.lon_last}); "
            "remove it from the sites file or use another model"
        )
    for c, r in zip(col, row, strict=True):
        if method == "nearest":
            i, j = int(round(c)) % geom.ni if wraps else int(round(c)), int(round(r))
            idx_parts.append(np.array([j * geom.ni + i]))
            w_parts.append(np.ones(1))
            counts.append(1)
        else:
            i0, j0 = int(np.floor(c)), int(np.floor(r))
            i0 = min(i0, geom.ni - 2) if not wraps else i0
            j0 = min(max(j0, 0), geom.nj - 2)
            fx, fy = c - i0, r - j0
            i1 = (i0 + 1) % geom.ni if wraps else i0 + 1
            i0 %= geom.ni
            idx_parts.append(np.array([j0 * geom.ni + i0, j0 * geom.ni + i1,
                                       (j0 + 1) * geom.ni + i0, (j0 + 1) * geom.ni + i1]))
            w_parts.append(np.array([(1 - fx) * (1 - fy), fx * (1 - fy), (1 - fx) * fy, fx * fy]))
            counts.append(4)
        strict.append(True)
    for area in locations.areas:
        points = _points_in_area(geom, area, wraps)
        if points.size == 0:
            raise ConfigError(f"area {area.id!r} contains no grid point of {grid_name}: "
                              "enlarge it or use a site (point) instead")
        idx_parts.append(points)
        w_parts.append(np.ones(points.size))
        counts.append(points.size)
        strict.append(False)
    starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    return Sampler(
        idx=np.concatenate(idx_parts).astype(np.int64) if idx_parts else np.zeros(0, np.int64),
        weights=np.concatenate(w_parts) if w_parts else np.zeros(0),
        starts=starts, strict=np.array(strict, dtype=bool),
        single=bool(counts) and all(c == 1 for c in counts) and not locations.areas,
    )


def _points_in_area(geom: GridGeometry, area, wraps: bool) -> np.ndarray:
    """Flat indices of the grid points inside an area's polygons (only its bbox is examined)."""
    lon_min, lat_min, lon_max, lat_max = area.bbox
    c, r, _ = _fractional_index(geom, np.array([lat_max, lat_min]), np.array([lon_min, lon_max]))
    r0, r1 = sorted((int(np.floor(r[0])), int(np.ceil(r[1]))))
    c0, c1 = int(np.floor(c[0])), int(np.ceil(c[1]))
    r0, r1 = max(r0, 0), min(r1, geom.nj - 1)
    if not wraps:
        c0, c1 = max(c0, 0), min(c1, geom.ni - 1)
    if r1 < r0 or c1 < c0:
        return np.zeros(0, np.int64)
    cols = np.arange(c0, c1 + 1)
    rows = np.arange(r0, r1 + 1)
    sign = -1 if geom.i_negative else 1
    lons = geom.lon_first + sign * cols * geom.dlon
    lats = geom.lat_first + (rows * geom.dlat if geom.j_positive else -rows * geom.dlat)
    # Put grid longitudes in the polygon's frame (-180..180 vs 0..360).
    lons = (lons - lon_min + 180.0) % 360.0 + lon_min - 180.0
    glon, glat = np.meshgrid(lons, lats)
    inside = np.zeros(glon.shape, dtype=bool)
    pts = np.column_stack([glon.ravel(), glat.ravel()])
    for ring in area.rings:
        inside |= PolygonPath(np.asarray(ring)).contains_points(pts).reshape(glon.shape)
    jj, ii = np.nonzero(inside)
    return (rows[jj] * geom.ni + (cols[ii] % geom.ni)).astype(np.int64)


def _unit_xyz(lats: np.ndarray, lons: np.ndarray) -> np.ndarray:
    la, lo = np.radians(lats), np.radians(lons)
    return np.column_stack([np.cos(la) * np.cos(lo), np.cos(la) * np.sin(lo), np.sin(la)])


def build_points_sampler(lats: np.ndarray, lons: np.ndarray, locations: Locations,
                         method: str = "nearest", grid_name: str = "the grid",
                         grid_type: str = "") -> Sampler:
    """Indices for ``locations`` on a grid given by every point's coordinates (any projection).

    Nearest: a KD-tree on 3-D unit-sphere coordinates (great-circle nearest; no seam at the date
    line or the poles). A site farther from its nearest point than that point's farthest of 8
    neighbours is outside the grid (a ConfigError). Bilinear needs a lattice: an InputError.
    """
    _check_method(method)
    if method != "nearest":
        raise InputError(f"{grid_name} is a {grid_type or 'non lat/lon'} grid: bilinear "
                         "interpolation needs a regular or rotated lat/lon grid; use method "
                         "nearest", param="method")
    lats = np.asarray(lats, dtype=float)
    lons = np.asarray(lons, dtype=float)
    idx_parts: list[np.ndarray] = []
    counts: list[int] = []
    if len(locations.site_ids):
        points = _unit_xyz(lats, lons)
        tree = cKDTree(points)
        dist, nearest = tree.query(_unit_xyz(locations.lats, locations.lons))
        spacing = tree.query(points[nearest], k=min(9, len(points)))[0].max(axis=1)
        outside = dist > np.maximum(spacing, 1e-12)
        if outside.any():
            k = int(np.argmax(outside))
            raise ConfigError(
                f"site {locations.site_ids[k]!r} (lat {locations.lats[k]}, lon "
                f"{locations.lons[k]}) is outside {grid_name} ({grid_type}, lat "
                f"{lats.min():.4g}..{lats.max():.4g}, lon {lons.min():.4g}..{lons.max():.4g}; "
                f"nearest point {dist[k] * 6371.0:.0f} km away); remove it from the sites file "
                "or use another model")
        idx_parts += [np.array([i]) for i in nearest]
        counts += [1] * len(nearest)
    for area in locations.areas:
        inside = _points_inside(lats, lons, area)
        if inside.size == 0:
            raise ConfigError(f"area {area.id!r} contains no grid point of {grid_name}: "
                              "enlarge it or use a site (point) instead")
        idx_parts.append(inside)
        counts.append(inside.size)
    idx = np.concatenate(idx_parts).astype(np.int64) if idx_parts else np.zeros(0, np.int64)
    return Sampler(
        idx=idx, weights=np.ones(idx.size),
        starts=np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        strict=np.array([True] * len(locations.site_ids) + [False] * len(locations.areas)),
        single=bool(counts) and not locations.areas,
    )


def _points_inside(lats: np.ndarray, lons: np.ndarray, area: Area) -> np.ndarray:
    """Flat indices of the points inside an area's polygons (only its bbox is examined)."""
    lon_min, lat_min, lon_max, lat_max = area.bbox
    # Grid longitudes in the polygon's frame (-180..180 vs 0..360).
    frame_lons = (lons - lon_min + 180.0) % 360.0 + lon_min - 180.0
    near = np.flatnonzero((lats >= lat_min) & (lats <= lat_max) & (frame_lons >= lon_min)
                          & (frame_lons <= lon_max))
    pts = np.column_stack([frame_lons[near], lats[near]])
    inside = np.zeros(near.size, dtype=bool)
    for ring in area.rings:
        inside |= PolygonPath(np.asarray(ring)).contains_points(pts)
    return near[inside].astype(np.int64)
