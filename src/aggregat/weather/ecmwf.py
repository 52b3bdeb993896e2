"""ECMWF open data: read a step's ``.index`` and download only the fields we use, by byte range.

Each IFS open-data file holds every field of one step (hundreds of MB for the 0.25° grid); its
``.index`` beside it lists one JSON object per message with its ``_offset`` and ``_length``. We
keep the surface fields of the catalogue (``Product.index_names``), merge adjacent ranges, and
fetch each with a ``Range`` request: a few MB per step instead of the whole file, the way
ecmwf-opendata and Herbie do. Hand-written (a few lines over urllib3) rather than the
``ecmwf-opendata`` package: that package brings its own downloader, and ours already retries,
resumes, verifies and records each file in the manifest.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from aggregat.errors import CorruptFileError
from aggregat.weather.products import Product


@dataclass(frozen=True)
class IndexEntry:
    """One message of a step's file, as its ``.index`` line describes it."""

    param: str
    levtype: str
    level: str
    step: str
    offset: int
    length: int


def parse_index(text: str, name: str = ".index") -> list[IndexEntry]:
    """The entries of an ``.index`` file; a line that is not one is a clear error."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            item = json.loads(line)
            out.append(IndexEntry(param=str(item["param"]), levtype=str(item.get("levtype", "")),
                                  level=str(item.get("levelist", "")),
                                  step=str(item.get("step", "")), offset=int(item["_offset"]),
                                  length=int(item["_length"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise CorruptFileError(f"{name}, line {number}: not an ECMWF index entry ({exc}); "
                                   "fetch the run again later") from None
    return out


def wanted_entries(product: Product, entries: Iterable[IndexEntry],
                   packages: Sequence[str]) -> list[IndexEntry]:
    """The surface fields the catalogue uses for ``packages``, in file order."""
    names = {product.index_names[p.name] for pkg in packages for p in product.parameters(pkg)
             if p.name in product.index_names}
    return sorted((e for e in entries if e.levtype == "sfc" and e.param in names),
                  key=lambda e: e.offset)


def byte_ranges(entries: Sequence[IndexEntry]) -> list[tuple[int, int]]:
    """(first, last) byte ranges covering ``entries``, adjacent messages merged into one."""
    ranges: list[tuple[int, int]] = []
    for e in sorted(entries, key=lambda e: e.offset):
        last = e.offset + e.length - 1
        if ranges and e.offset <= ranges[-1][1] + 1:
            ranges[-1] = (ranges[-1][0], max(ranges[-1][1], last))
        else:
            ranges.append((e.offset, last))
    return ranges


def missing_fields(product: Product, entries: Iterable[IndexEntry],
                   packages: Sequence[str]) -> list[str]:
    """Catalogue fields absent from an index (the file is incomplete or the catalogue is out of
    date): reported, the others still used."""
    present = {e.param for e in entries if e.levtype == "sfc"}
    return sorted({product.index_names[p.name] for pkg in packages
                   for p in product.parameters(pkg) if p.name in product.index_names}
                  - present)
