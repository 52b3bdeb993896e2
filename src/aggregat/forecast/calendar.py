"""Calendar features in local time: hour, weekday, season, public holidays and bridge days.

Holidays come from the ``holidays`` package with the years passed explicitly (the package's lazy
year expansion is easy to get wrong on multi-year frames). A calendar code is a country
(``FR``) or a country and subdivision (``AU-VIC``, ``DE-BY``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from functools import lru_cache

import numpy as np
import pandas as pd

from aggregat.errors import ConfigError

CALENDAR_FEATURES = [
    "hour_local", "weekday", "month", "day_of_year", "is_weekend", "is_holiday", "is_bridge",
    "is_offday", "day_after_offday", "day_before_offday", "day_after_holiday",
    "day_before_holiday", "holidays_within_7d",
]


def parse_holiday_code(code: str) -> tuple[str, str | None]:
    """Split ``"AU-VIC"`` into ``("AU", "VIC")`` and ``"FR"`` into ``("FR", None)``."""
    import holidays

    country, _, subdiv = code.strip().partition("-")
    country = country.upper()
    supported = holidays.list_supported_countries()
    if country not in supported:
        raise ConfigError(f"holiday calendar {code!r}: unknown country {country!r}; use an ISO "
                          "code such as FR, DE, AU-VIC (see the 'holidays' package)")
    if subdiv and subdiv.upper() not in {s.upper() for s in supported[country]}:
        raise ConfigError(f"holiday calendar {code!r}: {country} has no subdivision {subdiv!r}; "
                          f"known: {', '.join(supported[country][:20])}")
    return country, (subdiv or None)


@lru_cache(maxsize=64)
def _holiday_dates(code: str, years: tuple[int, ...]) -> frozenset[dt.date]:
    import holidays

    country, subdiv = parse_holiday_code(code)
    cal = holidays.country_holidays(country, subdiv=subdiv, years=list(years))
    return frozenset(cal.keys())


def holiday_dates(code: str | None, years: Iterable[int]) -> frozenset[dt.date]:
    """Public holidays of calendar ``code`` for the given ``years`` (empty without a code)."""
    if not code:
        return frozenset()
    return _holiday_dates(code, tuple(sorted(set(int(y) for y in years))))


def day_table(dates: pd.DatetimeIndex, code: str | None) -> pd.DataFrame:
    """Per local date (naive midnight index): holiday, bridge and neighbour-of-holiday flags."""
    days = pd.DatetimeIndex(sorted(set(dates.normalize())))
    if len(days) == 0:
        return pd.DataFrame(index=days)
    # Pad by a week so that neighbours of the first/last day are known.
    full = pd.date_range(days[0] - pd.Timedelta(days=7), days[-1] + pd.Timedelta(days=7), freq="D")
    hol = holiday_dates(code, range(full[0].year, full[-1].year + 1))
    is_hol = np.array([d.date() in hol for d in full], dtype=bool)
    weekend = full.day_of_week.to_numpy() >= 5
    off = is_hol | weekend
    prev_off = np.r_[False, off[:-1]]
    next_off = np.r_[off[1:], False]
    prev_hol = np.r_[False, is_hol[:-1]]
    next_hol = np.r_[is_hol[1:], False]
    bridge = ~off & prev_off & next_off
    # Holidays within +-7 days: the Christmas/New-Year weeks and other holiday clusters.
    density = np.convolve(is_hol.astype(float), np.ones(15), mode="same")
    table = pd.DataFrame({
        "is_holiday": is_hol, "is_bridge": bridge, "is_offday": off | bridge,
        "day_after_offday": prev_off, "day_before_offday": next_off,
        "day_after_holiday": prev_hol, "day_before_holiday": next_hol,
        "holidays_within_7d": density,
    }, index=full)
    return table.loc[days].astype(float)


def calendar_features(valid_time: pd.DatetimeIndex | pd.Series, tz: str,
                      holidays_code: str | None) -> pd.DataFrame:
    """Calendar features for UTC ``valid_time`` values, computed in the local time zone ``tz``.

    Returns a frame aligned positionally with ``valid_time`` (a RangeIndex), columns
    :data:`CALENDAR_FEATURES` as floats.
    """
    vt = pd.DatetimeIndex(valid_time)
    if vt.tz is None:
        raise ValueError("valid_time must be tz-aware UTC")
    local = vt.tz_convert(tz)
    naive_day = local.tz_localize(None).normalize()
    days = day_table(naive_day, holidays_code)
    per_row = days.reindex(naive_day).reset_index(drop=True)
    out = pd.DataFrame({
        "hour_local": local.hour + local.minute / 60.0,
        "weekday": local.day_of_week,
        "month": local.month,
        "day_of_year": local.day_of_year,
        "is_weekend": (local.day_of_week >= 5).astype(float),
    }).astype(float)
    out = pd.concat([out, per_row], axis=1)
    return out[CALENDAR_FEATURES]
