"""Synthetic, smooth and physically plausible weather fields on a regular lat/lon grid.

The storage-free core of :mod:`aggregat.weather.simulate`. Every field is a pure function of
(seed, run, step, absolute latitude/longitude), so a cropped grid carries exactly the values of
the full grid at the same points, successive runs forecast the same "true" weather for the same
valid time (plus an error that grows with lead time), and files are byte-identical across reruns.

Weather systems are travelling separable waves: ``sum_k a_k cos(ky (lat - cy t) + py) *
cos(kx (lon - cx t) + px)``, evaluated as one small matrix product per field (cheap on the 804k
points of AROME 0.025°), with analytic gradients for the geostrophic wind.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
OMEGA = 7.292e-5  # Earth rotation, rad/s
RHO = 1.25  # air density near the surface, kg/m3
M_PER_DEG = 111_195.0
F32 = np.float32  # fields are float32: half the memory traffic; accumulations stay float64


def _rng(seed: int, *parts: object) -> np.random.Generator:
    keys = [seed & 0xFFFFFFFF] + [zlib.crc32(str(p).encode()) for p in parts]
    return np.random.default_rng(keys)


@dataclass(frozen=True)
class Modes:
    """Travelling separable waves with unit standard deviation (on average over space and time)."""

    a: np.ndarray
    kx: np.ndarray  # rad per degree of longitude
    ky: np.ndarray  # rad per degree of latitude
    cx: np.ndarray  # phase speed, degrees of longitude per hour (eastwards > 0)
    cy: np.ndarray
    px: np.ndarray
    py: np.ndarray

    @classmethod
    def random(cls, rng: np.random.Generator, k: int = 6, wavelength: tuple[float, float] = (9, 32),
               speed: tuple[float, float] = (0.12, 0.5)) -> Modes:
        a = rng.normal(size=k)
        a /= np.sqrt(np.sum(a * a) / 4.0)  # each product of cosines has variance 1/4
        return cls(a=a,
                   kx=2 * np.pi / rng.uniform(*wavelength, size=k),
                   ky=2 * np.pi / rng.uniform(*wavelength, size=k),
                   cx=rng.uniform(*speed, size=k),
                   cy=rng.uniform(-0.1, 0.1, size=k),
                   px=rng.uniform(0, 2 * np.pi, size=k),
                   py=rng.uniform(0, 2 * np.pi, size=k))

    def factors(self, lat: np.ndarray, lon: np.ndarray, t: float, scale: float = 1.0,
                gradient: bool = False):
        """(F, G) with field = F @ G; with ``gradient`` also (dF/dlat, dG/dlon)."""
        ay = np.outer(lat, self.ky) + (self.py - self.ky * self.cy * t)  # (nj, k)
        ax = np.outer(self.kx, lon) + (self.px - self.kx * self.cx * t)[:, None]  # (k, ni)
        f = (np.cos(ay) * (self.a * scale)).astype(F32)
        g = np.cos(ax).astype(F32)
        if not gradient:
            return f, g
        df = (-np.sin(ay) * (self.a * scale * self.ky)).astype(F32)
        return f, g, df, (-np.sin(ax) * self.kx[:, None]).astype(F32)


class SyntheticWeather:
    """Fields of one run on one grid. ``lat`` (nj, north to south) and ``lon`` (ni) in degrees."""

    ANOMALIES = ("p", "t", "q", "l", "m", "h")

    def __init__(self, lat: np.ndarray, lon: np.ndarray, run: datetime, seed: int = 0) -> None:
        self.lat = np.asarray(lat, dtype=np.float64)
        lon = np.asarray(lon, dtype=np.float64)
        self.lon = np.where(lon >= 180.0, lon - 360.0, lon)  # waves live on -180..180
        self.run = run
        self.t0 = (run - EPOCH).total_seconds() / 3600.0
        # The "truth" depends on the seed only; the forecast error also on the run.
        self.truth = {n: Modes.random(_rng(seed, "truth", n)) for n in self.ANOMALIES}
        self.error = {n: Modes.random(_rng(seed, "error", n, self.t0), k=3, wavelength=(8, 24))
                      for n in self.ANOMALIES}
        relief = Modes.random(_rng(seed, "relief"), k=8, wavelength=(3, 12), speed=(0, 0))
        f, g = relief.factors(self.lat, self.lon, 0.0)
        self.relief = (900.0 * np.clip(f @ g - 0.4, 0.0, None) ** 1.5).astype(F32)  # metres
        self.roughness = 1.0 - 0.35 * np.clip(self.relief / 1500.0, 0.0, 1.0)
        phi = np.radians(self.lat)
        self.sin_lat, self.cos_lat = np.sin(phi), np.cos(phi)
        coriolis = 2 * OMEGA * np.clip(np.abs(self.sin_lat), 0.25, None)
        # Geostrophic wind per unit of pressure-anomaly gradient (per degree), by latitude.
        self.geo_y = (950.0 / (M_PER_DEG * RHO * coriolis)).astype(F32)[:, None]
        self.geo_x = (self.geo_y[:, 0] / self.cos_lat).astype(F32)[:, None]
        self.lat_term = (-0.55 * (self.lat - 46.0)).astype(F32)[:, None]
        self._cache: tuple[int, dict[str, np.ndarray]] | None = None

    # -- building blocks ---------------------------------------------------------------------
    def _anomaly(self, name: str, step: float, gradient: bool = False):
        t = self.t0 + step
        err = 0.6 * (1.0 - np.exp(-step / 60.0))  # forecast error grows with lead time
        parts = [self.truth[name].factors(self.lat, self.lon, t, 1.0, gradient),
                 self.error[name].factors(self.lat, self.lon, t, err, gradient)]
        f = np.hstack([p[0] for p in parts])
        g = np.vstack([p[1] for p in parts])
        if not gradient:
            return f @ g
        df = np.hstack([p[2] for p in parts])
        dg = np.vstack([p[3] for p in parts])
        return f @ g, df @ g, f @ dg

    def _valid(self, step: float) -> tuple[float, float]:
        """(UTC hour of day, day of year) of a valid time."""
        hours = self.t0 + step
        utc_hour = hours % 24.0
        doy = ((hours / 24.0) % 365.2425)  # close enough for seasons
        return utc_hour, doy

    def _daily(self, step: float, peak_hour: float) -> np.ndarray:
        """cos of the local solar time, 1 at ``peak_hour``, as a (1, ni) row."""
        solar = (self._valid(step)[0] + self.lon / 15.0) % 24.0
        return np.cos(2 * np.pi * (solar - peak_hour) / 24.0).astype(F32)[None, :]

    def clouds(self, step: int) -> dict[str, np.ndarray]:
        """Low/mid/high/total cloud cover as fractions 0..1 (cached for the last step)."""
        if self._cache is not None and self._cache[0] == step:
            return self._cache[1]
        q = self._anomaly("q", step)
        low = _sigmoid(3.0 * (self._anomaly("l", step) + 0.35 * q) - 0.4)
        mid = _sigmoid(3.0 * self._anomaly("m", step) - 1.3)
        high = _sigmoid(3.0 * self._anomaly("h", step) - 1.0)
        total = 1.0 - (1.0 - low) * (1.0 - mid) * (1.0 - high)  # random overlap
        out = {"q": q, "lcc": low, "mcc": mid, "hcc": high, "tcc": total}
        self._cache = (step, out)
        return out

    def _cos_zenith(self, step: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """cos(zenith) = a + b * cos(hour angle), as (nj, 1), (nj, 1) and (1, ni) float32."""
        utc_hour, doy = self._valid(step)
        decl = np.radians(23.44) * np.sin(2 * np.pi * (284.0 + doy) / 365.0)
        hour_angle = np.radians(15.0 * (utc_hour + self.lon / 15.0 - 12.0))
        return ((self.sin_lat * np.sin(decl)).astype(F32)[:, None],
                (self.cos_lat * np.cos(decl)).astype(F32)[:, None],
                np.cos(hour_angle).astype(F32)[None, :])

    # -- public fields -----------------------------------------------------------------------
    def instant(self, step: int, adjust=None, upper_air: bool = True) -> dict[str, np.ndarray]:
        """Instantaneous fields at ``step`` in GRIB units (K, %, m/s, Pa, m2/s2), shape (nj, ni).

        ``upper_air=False`` skips t850 and z500 (not in the surface packages).
        ``adjust(fields)`` may overwrite base fields in place (driver points) before the derived
        ones (wind speed, gust, total cloud cover) are computed, then once more for those.
        """
        _, doy = self._valid(step)
        c = self.clouds(step)
        season = -float(np.cos(2 * np.pi * (doy - 20.0) / 365.25))  # -1 mid-January, +1 July
        mean_c = (12.0 + 7.5 * season) + self.lat_term - 6.5e-3 * self.relief
        a_t = self._anomaly("t", step)
        diurnal = self._daily(step, 15.0)
        amplitude = (4.0 + 1.5 * season) * (1.0 - 0.55 * c["tcc"])
        t2m = 273.15 + mean_c + 3.0 * a_t + amplitude * diurnal
        p, dp_dlat, dp_dlon = self._anomaly("p", step, gradient=True)
        msl = 101_500.0 + 950.0 * p
        # Geostrophic wind from the pressure gradient, slowed and turned towards low pressure.
        ug = -dp_dlat * self.geo_y
        vg = dp_dlon * self.geo_x
        wind_day = self._daily(step, 14.0)
        factor = 0.14 * self.roughness * (1.0 + 0.15 * wind_day)
        cos_a, sin_a = float(np.cos(np.radians(20.0))), float(np.sin(np.radians(20.0)))
        fields = {
            "t2m": t2m,
            "rh2m": np.clip(72.0 + 14.0 * c["q"] - 3.0 * amplitude * diurnal
                            + 10.0 * (c["lcc"] - 0.4), 8.0, 100.0),
            "u10": factor * (ug * cos_a - vg * sin_a),
            "v10": factor * (ug * sin_a + vg * cos_a),
            "msl": msl,
            "lcc": 100.0 * c["lcc"], "mcc": 100.0 * c["mcc"], "hcc": 100.0 * c["hcc"],
        }
        if upper_air:
            fields["t850"] = 273.15 + mean_c + 6.5e-3 * self.relief - 9.0 + 3.5 * a_t
            fields["z500"] = 9.80665 * (5580.0 + 8.0 * (mean_c + 6.5e-3 * self.relief - 12.0)
                                        + 60.0 * p + 40.0 * a_t)
        if adjust is not None:
            adjust(fields)
        ws = np.hypot(fields["u10"], fields["v10"])
        derived = {
            "ws10": ws,
            "gust10": ws * (1.35 + 0.15 * wind_day) + 1.0,  # max of the previous hour >= wind
            "tcc": 100.0 * (1.0 - (1.0 - fields["lcc"] / 100.0) * (1.0 - fields["mcc"] / 100.0)
                            * (1.0 - fields["hcc"] / 100.0)),
        }
        if adjust is not None:
            adjust(derived)
        fields.update(derived)
        return fields

    def hourly(self, hour: int) -> dict[str, np.ndarray]:
        """Amounts over (hour-1, hour]: ``ssrd`` J/m2 and ``tp`` kg/m2, both >= 0."""
        c = self.clouds(hour)
        flux = np.zeros((self.lat.size, self.lon.size), dtype=F32)
        for frac in (0.125, 0.375, 0.625, 0.875):  # mean over the hour of a clear-sky model
            a, b, cos_h = self._cos_zenith(hour - 1 + frac)
            if (a + b * cos_h.max()).max() <= 0.0:
                continue  # night everywhere
            mu = np.maximum(a + b * cos_h, 0.0)
            flux += 1098.0 * mu * np.exp(-0.057 / np.maximum(mu, 1e-3))  # Haurwitz
        # Kasten-Czeplak cloud attenuation; exactly 0 at night.
        ssrd = flux * (900.0 * (1.0 - 0.75 * c["tcc"] ** 3.4))  # 3600 s / 4 samples
        wet = np.clip((c["lcc"] - 0.9) / 0.1, 0.0, 1.0) ** 2
        tp = 1.5 * wet * (0.4 + c["mcc"]) * (1.0 + 0.5 * np.clip(c["q"], 0.0, None))
        return {"ssrd": ssrd, "tp": tp}


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))
