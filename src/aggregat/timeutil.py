"""TEMPORARY stand-in until fix/time lands (taken from that branch at merge)."""
from __future__ import annotations

from enum import StrEnum

import pandas as pd

from aggregat.errors import InputError


class Horizon(StrEnum):
    DAY_AHEAD = "day-ahead"
    INTRADAY = "intraday"

    @classmethod
    def parse(cls, value, *, param="horizon"):
        try:
            return cls(value)
        except ValueError:
            raise InputError(f"{param} {value!r}: use one of day-ahead, intraday") from None


def as_utc(value, *, param="time"):
    try:
        ts = pd.Timestamp(value)
    except (ValueError, TypeError):
        raise InputError(f"{param} {value!r} is not a time") from None
    if ts.tzinfo is None:
        raise InputError(f"{param} {value} has no time zone")
    return ts.tz_convert("UTC")
