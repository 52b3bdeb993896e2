"""Relative humidity and dew point, one formula for both ways (Magnus, Alduchov-Eskridge 1996).

ECMWF open data carries the 2 m dew point, not the relative humidity that Météo-France gives and
the models use: extraction derives ``rh2m_pct`` from ``t2m`` and ``d2m``, the simulator the reverse.
"""

from __future__ import annotations

import numpy as np

_A, _B = 17.625, 243.04  # °C


def relative_humidity(t_c: np.ndarray, td_c: np.ndarray) -> np.ndarray:
    """Relative humidity (%) from temperature and dew point (°C), capped at 100."""
    t, td = np.asarray(t_c, dtype=np.float64), np.asarray(td_c, dtype=np.float64)
    rh = 100.0 * np.exp(_A * td / (_B + td) - _A * t / (_B + t))
    return np.minimum(rh, 100.0)


def dew_point(t_c: np.ndarray, rh_pct: np.ndarray) -> np.ndarray:
    """Dew point (°C) from temperature (°C) and relative humidity (%)."""
    t = np.asarray(t_c, dtype=np.float64)
    gamma = np.log(np.clip(np.asarray(rh_pct, dtype=np.float64), 0.1, 100.0) / 100.0) \
        + _A * t / (_B + t)
    return _B * gamma / (_A - gamma)
