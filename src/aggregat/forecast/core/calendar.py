"""Calendar features in local time: hour, weekday, season, public holidays and bridge days,
and optionally school holidays.

Holidays come from the ``holidays`` package with the years passed explicitly (the package's lazy
year expansion is easy to get wrong on multi-year frames). A calendar code is a country
(``FR``) or a country and subdivision (``AU-VIC``, ``DE-BY``). School holidays use the same
package's ``school`` category: a zone (``FR-Zone C``, ``NL-Zuid``), a country (``FR``: every
zone it has school holidays for) or several codes separated by commas.
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


def calendar_code(text: str | None) -> str | None:
    """A public- or school-holiday code as written in a setting or option; None for "" and
    "none" (no calendar)."""
    code = (text or "").strip()
    return None if code.lower() in ("", "none") else code


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


def school_zones(code: str) -> list[tuple[str, str | None]]:
    """(country, subdivision) pairs of a school-holiday code; a ConfigError names a bad one."""
    import holidays

    zones: list[tuple[str, str | None]] = []
    for part in (p.strip() for p in code.split(",")):
        if not part:
            continue
        country, subdiv = parse_holiday_code(part)
        cls = type(holidays.country_holidays(country))
        if "school" not in getattr(cls, "supported_categories", ()):
            raise ConfigError(f"school holidays {part!r}: the installed 'holidays' package "
                              f"({holidays.__version__}) has none for {country}; upgrade it "
                              "(pip install -U holidays) or leave the setting empty")
        if subdiv:
            zone = next(z for z in cls.subdivisions if z.upper() == subdiv.upper())
            recent = tuple(range(dt.date.today().year - 10, dt.date.today().year + 2))
            if not _school_dates(country, zone, recent):
                raise ConfigError(f"school holidays {part!r}: the 'holidays' package has none "
                                  f"for {zone}; use a zone that has them (FR: Zone A/B/C)")
            zones.append((country, zone))
        else:  # the whole country: those of its subdivisions that have school holidays
            zones += [(country, None), *((country, z) for z in cls.subdivisions)]
    if not zones:
        raise ConfigError(f"school holidays {code!r}: no zone given; write e.g. FR or FR-Zone C")
    return zones


@lru_cache(maxsize=256)
def _school_dates(country: str, subdiv: str | None, years: tuple[int, ...]
                  ) -> frozenset[dt.date]:
    import holidays

    return frozenset(holidays.country_holidays(country, subdiv=subdiv, categories=("school",),
                                               years=list(years)).keys())


def school_holiday_share(days: pd.DatetimeIndex, code: str) -> np.ndarray:
    """Per local day (naive midnight): the share of the zones of ``code`` on school holiday,
    from 0 to 1 (a portfolio across France: 1/3 when one zone of three is on holiday).

    A zone counts only between the first and the last school holiday the package knows for it
    in the years asked (FR: since the 2017-2018 school year): outside, its days are unknown and
    the share is taken over the other zones, NaN when none knows, never a made-up 0. A country
    code counts the zones that have school holidays (FR: zones A, B and C, not its overseas
    departments, which have none in the package).
    """
    zones = school_zones(code)
    years = tuple(range(days.min().year - 1, days.max().year + 2)) if len(days) else ()
    dates = days.date if len(days) else np.array([], dtype=object)
    on = np.full((len(zones), len(days)), np.nan)
    for k, (country, subdiv) in enumerate(zones):
        known = _school_dates(country, subdiv, years)
        if not known:
            continue
        lo, hi = min(known), max(known)
        for i, d in enumerate(dates):
            if lo <= d <= hi:
                on[k, i] = float(d in known)
    with np.errstate(invalid="ignore"):
        counted = np.isfinite(on).sum(axis=0)
        return np.where(counted > 0, np.nansum(on, axis=0) / np.maximum(counted, 1), np.nan)


def calendar_features(valid_time: pd.DatetimeIndex | pd.Series, tz: str,
                      holidays_code: str | None, school_code: str | None = None
                      ) -> pd.DataFrame:
    """Calendar features for UTC ``valid_time`` values, computed in the local time zone ``tz``.

    Returns a frame aligned positionally with ``valid_time`` (a RangeIndex), columns
    :data:`CALENDAR_FEATURES` as floats, and ``school_holiday`` (see
    :func:`school_holiday_share`) with a ``school_code``.
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
    out = pd.concat([out, per_row], axis=1)[CALENDAR_FEATURES]
    if school_code:
        unique = pd.DatetimeIndex(naive_day.unique())
        share = pd.Series(school_holiday_share(unique, school_code), index=unique)
        out["school_holiday"] = share.reindex(naive_day).to_numpy()
    return out
