"""The Météo-France open-data catalogue, as data (one small template per product, as Herbie does).

Everything the fetcher, the extractor, the validator and the simulator need to know about ARPEGE and
AROME lives here: grids, run hours, forecast steps, time-group files, packages, the parameters each
package carries (by GRIB2 header keys, since short names depend on decoder tables), and the URL
layout. A format change at Météo-France should be a change of this file only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlencode

from aggregat import timeutil
from aggregat.errors import ConfigError

RUN_FOLDER_FORMAT = "%Y-%m-%dT%HZ"  # the run segment of datalake paths


@dataclass(frozen=True)
class Grid:
    """A regular lat/lon grid, scanned from north-west, longitudes increasing eastwards."""

    lat_first: float  # northernmost latitude
    lon_first: float  # westernmost longitude (may be negative, or 0 for a global grid)
    dlat: float
    dlon: float
    ni: int  # points along a parallel (longitudes)
    nj: int  # points along a meridian (latitudes)
    is_global: bool = False

    @property
    def lat_last(self) -> float:
        return round(self.lat_first - (self.nj - 1) * self.dlat, 6)

    @property
    def lon_last(self) -> float:
        return round(self.lon_first + (self.ni - 1) * self.dlon, 6)

    @property
    def size(self) -> int:
        return self.ni * self.nj

    def crop(self, lat_max: float, lat_min: float, lon_min: float, lon_max: float) -> Grid:
        """The sub-grid covering a box, on the same points (for fast tests and demos)."""
        j0 = max(0, int(round((self.lat_first - lat_max) / self.dlat)))
        j1 = min(self.nj - 1, int(round((self.lat_first - lat_min) / self.dlat)))
        i0 = max(0, int(round((lon_min - self.lon_first) / self.dlon)))
        i1 = min(self.ni - 1, int(round((lon_max - self.lon_first) / self.dlon)))
        return Grid(
            lat_first=round(self.lat_first - j0 * self.dlat, 6),
            lon_first=round(self.lon_first + i0 * self.dlon, 6),
            dlat=self.dlat, dlon=self.dlon, ni=i1 - i0 + 1, nj=j1 - j0 + 1,
        )


@dataclass(frozen=True)
class Parameter:
    """A field as GRIB2 header keys, plus how to turn it into a bank column."""

    name: str  # internal name, e.g. "t2m"
    column: str  # bank column with its unit, e.g. "t2m_c"
    discipline: int
    category: int
    number: int
    level_type: int  # typeOfFirstFixedSurface: 1 surface, 101 mean sea level, 103 above ground
    level: int
    statistic: int | None = None  # typeOfStatisticalProcessing: 1 accumulation, 2 max; None instant
    grib_units: str = ""
    scale: float = 1.0  # bank value = grib value * scale + offset
    offset: float = 0.0
    accumulated_from_start: bool = False  # de-accumulate (radiation, precipitation)
    per_second: bool = False  # de-accumulated amount / interval in seconds (J/m² -> W/m²)

    @property
    def key(self) -> tuple[int, int, int, int, int, int]:
        """Identity in a file, independent of decoder tables."""
        stat = -1 if self.statistic is None else self.statistic
        return (self.discipline, self.category, self.number, self.level_type, self.level, stat)


PARAMETERS: dict[str, Parameter] = {
    p.name: p
    for p in [
        Parameter("t2m", "t2m_c", 0, 0, 0, 103, 2, grib_units="K", offset=-273.15),
        Parameter("rh2m", "rh2m_pct", 0, 1, 1, 103, 2, grib_units="%"),
        Parameter("u10", "u10_ms", 0, 2, 2, 103, 10, grib_units="m s-1"),
        Parameter("v10", "v10_ms", 0, 2, 3, 103, 10, grib_units="m s-1"),
        Parameter("ws10", "ff10_ms", 0, 2, 1, 103, 10, grib_units="m s-1"),
        Parameter("gust10", "gust10_ms", 0, 2, 22, 103, 10, statistic=2, grib_units="m s-1"),
        Parameter("msl", "msl_hpa", 0, 3, 1, 101, 0, grib_units="Pa", scale=0.01),
        Parameter("ssrd", "ssrd_wm2", 0, 4, 7, 1, 0, statistic=1, grib_units="J m-2",
                  accumulated_from_start=True, per_second=True),
        Parameter("tp", "tp_mm", 0, 1, 8, 1, 0, statistic=1, grib_units="kg m-2",
                  accumulated_from_start=True),
        Parameter("d2m", "d2m_c", 0, 0, 6, 103, 2, grib_units="K", offset=-273.15),
        Parameter("tcc", "tcc_pct", 0, 6, 1, 1, 0, grib_units="%"),
        Parameter("lcc", "lcc_pct", 0, 6, 3, 1, 0, grib_units="%"),
        Parameter("mcc", "mcc_pct", 0, 6, 4, 1, 0, grib_units="%"),
        Parameter("hcc", "hcc_pct", 0, 6, 5, 1, 0, grib_units="%"),
        # Upper-air fields of the IP/HP packages: fetched and archived, not extracted by default.
        Parameter("t850", "t850_c", 0, 0, 0, 100, 850, grib_units="K", offset=-273.15),
        Parameter("z500", "z500_m2s2", 0, 3, 4, 100, 500, grib_units="m2 s-2"),
    ]
}

# Physical bounds of decoded values, in GRIB units (accumulations from the run start up to 102 h):
# a value outside proves the file corrupt (a second guard after the manifest's hash, and the only
# one for files without a manifest). Wide enough for ECMWF conventions (clouds 0-1, tp in m).
PHYSICAL_BOUNDS: dict[str, tuple[float, float]] = {
    "t2m": (180.0, 340.0),  # K
    "rh2m": (0.0, 105.0),  # %
    "d2m": (170.0, 320.0),  # K
    "u10": (-120.0, 120.0),  # m s-1
    "v10": (-120.0, 120.0),
    "ws10": (0.0, 120.0),
    "gust10": (0.0, 150.0),
    "msl": (85_000.0, 110_000.0),  # Pa
    "ssrd": (-1.0e5, 6.0e8),  # J m-2 (1400 W m-2 for 102 h), packing noise below 0
    "tp": (-1.0, 3000.0),  # kg m-2
    "tcc": (-1.0, 101.0),  # %
    "lcc": (-1.0, 101.0),
    "mcc": (-1.0, 101.0),
    "hcc": (-1.0, 101.0),
    "t850": (180.0, 330.0),  # K
    "z500": (40_000.0, 65_000.0),  # m2 s-2
}

# Columns derived from others at extraction time.
DERIVED_COLUMNS = {"wind_speed_10m_ms": ("u10", "v10"), "wind_dir_10m_deg": ("u10", "v10"),
                   "rh2m_pct": ("t2m", "d2m")}

# What `weather extract` keeps by default (the rest of a package is skipped without decoding).
DEFAULT_VARIABLES = ("t2m", "rh2m", "d2m", "u10", "v10", "gust10", "msl", "ssrd", "tp", "lcc",
                     "mcc", "hcc", "tcc")


@dataclass(frozen=True)
class Product:
    """One Météo-France model at one resolution."""

    id: str  # e.g. "arome-0025"
    model: str  # path segment, e.g. "arome"
    res: str  # path segment, e.g. "0025"
    grid: Grid
    run_hours: tuple[int, ...]
    max_step: int
    groups: tuple[tuple[int, int], ...]  # (first, last) step of each time-group file
    group_digits: int  # 2 -> "07H12H", 3 -> "013H024H"
    packages: dict[str, tuple[str, ...]]  # package -> parameter names it carries
    default_packages: tuple[str, ...] = ("SP1", "SP2")
    single_step_groups: bool = False  # AROME 0.01: one file per hour, "00H"
    # Steps beyond this are 3-hourly (ARPEGE 0.25 after 48 h); None: hourly to max_step.
    hourly_until: int | None = None
    availability_delay_h: float = 3.0  # typical delay between run time and full publication
    aliases: tuple[str, ...] = field(default_factory=tuple)
    step_h: int = 1  # hours between steps (ECMWF open data: 3)
    provider: str = "meteofrance"  # URL layout and download protocol: meteofrance | ecmwf
    # ECMWF: the parameters' names in the .index files (shortName), to download only those.
    index_names: dict[str, str] = field(default_factory=dict)

    @property
    def steps(self) -> tuple[int, ...]:
        if self.hourly_until is None:
            return tuple(range(0, self.max_step + 1, self.step_h))
        tail = range(self.hourly_until + 3, self.max_step + 1, 3)
        return tuple(range(self.hourly_until + 1)) + tuple(tail)

    def group_label(self, group: tuple[int, int]) -> str:
        first, last = group
        d = self.group_digits
        if self.single_step_groups:
            return f"{first:0{d}d}H"
        return f"{first:0{d}d}H{last:0{d}d}H"

    def group_steps(self, group: tuple[int, int]) -> tuple[int, ...]:
        first, last = group
        return tuple(s for s in self.steps if first <= s <= last)

    def group_of(self, label: str) -> tuple[int, int]:
        for group in self.groups:
            if self.group_label(group) == label:
                return group
        raise ConfigError(f"{self.id}: unknown time group {label!r}")

    def check_package(self, package: str) -> str:
        package = package.upper()
        if package not in self.packages:
            known = ", ".join(self.packages)
            raise ConfigError(f"{self.id}: unknown package {package!r} (known: {known})")
        return package

    def check_run(self, run: datetime) -> datetime:
        run = as_utc(run)
        if run.minute or run.second or run.microsecond or run.hour not in self.run_hours:
            hours = " ".join(f"{h:02d}" for h in self.run_hours)
            raise ConfigError(f"{self.id}: no run at {run:%Y-%m-%dT%H:%M}Z (runs at {hours} UTC)")
        return run

    def filename(self, run: datetime, package: str, group: tuple[int, int]) -> str:
        return (f"{self.model}__{self.res}__{package}__{self.group_label(group)}__"
                f"{run_label(run)}.grib2")

    def archive_rel(self, run: datetime, package: str, group: tuple[int, int]) -> str:
        """``{run}/{model}/{res}/{PKG}/{file}``: the path below the open-data base URL (and
        under a simulated archive's root). ECMWF open data: ``{yyyymmdd}/{HH}z/ifs/{res}/oper/
        {yyyymmddHH}0000-{step}h-oper-fc.grib2``, one file per step holding every field."""
        if self.provider == "ecmwf":
            run = as_utc(run)
            return (f"{run:%Y%m%d}/{run:%H}z/{self.model}/{self.res}/oper/"
                    f"{run:%Y%m%d%H}0000-{group[0]}h-oper-fc.grib2")
        return (f"{run_label(run)}/{self.model}/{self.res}/{package}/"
                f"{self.filename(run, package, group)}")

    def url(self, base_url: str, run: datetime, package: str, group: tuple[int, int]) -> str:
        """``{base}/{run}/{model}/{res}/{PKG}/{model}__{res}__{PKG}__{group}__{run}.grib2``."""
        return f"{base_url.rstrip('/')}/{self.archive_rel(run, package, group)}"

    def index_url(self, base_url: str, run: datetime, group: tuple[int, int]) -> str:
        """ECMWF: the ``.index`` beside a step's file (one JSON line per field with its byte
        offset and length), read to download only the fields we use."""
        return self.url(base_url, run, "", group).removesuffix(".grib2") + ".index"
    def api_url(self, base_url: str, run: datetime, package: str,
                group: tuple[int, int]) -> str:
        """The same file at Météo-France's authenticated API (its DPPaquet services)::

            {base}/DPPaquetAROME/v1/models/AROME/grids/0.025/packages/SP1/productARO
                ?referencetime=2026-11-28T00:00:00Z&time=00H06H&format=grib2

        (ARPEGE: ``DPPaquetARPEGE/v1/models/ARPEGE/grids/0.1/packages/SP1/productARP``).
        """
        model = self.model.upper()
        grid = f"{self.res[0]}.{self.res[1:]}"  # "0025" -> "0.025", "01" -> "0.1"
        query = urlencode({"referencetime": run_label(run), "time": self.group_label(group),
                           "format": "grib2"}, safe=":")
        return (f"{base_url.rstrip('/')}/DPPaquet{model}/v1/models/{model}/grids/{grid}/"
                f"packages/{package}/product{model[:3]}?{query}")

    def run_prefix(self, run: datetime) -> str:
        """``arome-0025/2026-11-28T00Z``: a run's folder in the datalake."""
        return f"{self.id}/{run_folder(run)}"

    def datalake_rel(self, run: datetime, package: str, group: tuple[int, int]) -> str:
        """``arome-0025/2026-11-28T00Z/SP1/{file}``: a file's path in the datalake."""
        package = self.check_package(package)
        return f"{self.run_prefix(run)}/{package}/{self.filename(run, package, group)}"

    def parameters(self, package: str) -> tuple[Parameter, ...]:
        return tuple(PARAMETERS[name] for name in self.packages[self.check_package(package)])

    def expected_steps(self, param: Parameter, group: tuple[int, int]) -> tuple[int, ...]:
        """Steps a time-group file holds for ``param`` (accumulations have no step 0)."""
        steps = self.group_steps(group)
        if param.statistic is not None:
            steps = tuple(s for s in steps if s > 0)
        return steps


def run_label(run: datetime) -> str:
    """``2026-05-11T00:00:00Z``, the run segment of Météo-France URLs."""
    return as_utc(run).strftime("%Y-%m-%dT%H:%M:%SZ")


def run_folder(run: datetime) -> str:
    """``2026-11-28T00Z``: the run segment of datalake paths."""
    return as_utc(run).strftime(RUN_FOLDER_FORMAT)


def as_utc(value: datetime, param: str = "run") -> datetime:
    """``value`` (aware: :func:`aggregat.timeutil.as_utc`) as a UTC datetime."""
    return timeutil.as_utc(value, param=param).to_pydatetime()


def _groups(bounds: list[int]) -> tuple[tuple[int, int], ...]:
    """Time groups from first steps and an end: [0, 7, 13, 52] -> (0,6),(7,12),(13,51)."""
    return tuple((bounds[i], bounds[i + 1] - 1) for i in range(len(bounds) - 1))


_SURFACE_ARPEGE = ("t2m", "rh2m", "u10", "v10", "ws10", "gust10", "msl", "ssrd", "tp")
_CLOUDS = ("tcc", "lcc", "mcc", "hcc")
_UPPER = ("t850", "z500")

PRODUCTS: dict[str, Product] = {
    p.id: p
    for p in [
        Product(
            id="arpege-01", model="arpege", res="01",
            grid=Grid(lat_first=72.0, lon_first=-32.0, dlat=0.1, dlon=0.1, ni=741, nj=521),
            run_hours=(0, 6, 12, 18), max_step=102,
            groups=_groups([0, 13, 25, 37, 49, 61, 73, 85, 97, 103]), group_digits=3,
            packages={"SP1": _SURFACE_ARPEGE, "SP2": _CLOUDS, "IP1": _UPPER, "IP2": _UPPER,
                      "IP3": _UPPER, "IP4": _UPPER, "HP1": _UPPER, "HP2": _UPPER},
            availability_delay_h=4.0, aliases=("arpege", "arpege-0.1"),
        ),
        Product(
            id="arpege-025", model="arpege", res="025",
            grid=Grid(lat_first=90.0, lon_first=0.0, dlat=0.25, dlon=0.25, ni=1440, nj=721,
                      is_global=True),
            run_hours=(0, 6, 12, 18), max_step=102, hourly_until=48,
            groups=_groups([0, 25, 49, 73, 103]), group_digits=3,
            packages={"SP1": _SURFACE_ARPEGE, "SP2": _CLOUDS, "IP1": _UPPER, "IP2": _UPPER,
                      "IP3": _UPPER, "IP4": _UPPER, "HP1": _UPPER, "HP2": _UPPER},
            availability_delay_h=4.0, aliases=("arpege-0.25",),
        ),
        Product(
            id="arome-0025", model="arome", res="0025",
            grid=Grid(lat_first=55.4, lon_first=-12.0, dlat=0.025, dlon=0.025, ni=1121, nj=717),
            run_hours=(0, 3, 6, 9, 12, 15, 18, 21), max_step=51,
            groups=_groups([0, 7, 13, 19, 25, 31, 37, 43, 49, 52]), group_digits=2,
            packages={"SP1": _SURFACE_ARPEGE, "SP2": _CLOUDS, "SP3": ("t850",),
                      "IP1": _UPPER, "IP2": _UPPER, "IP3": _UPPER, "IP4": _UPPER, "IP5": _UPPER,
                      "HP1": _UPPER, "HP2": _UPPER, "HP3": _UPPER},
            availability_delay_h=2.0, aliases=("arome", "arome-0.025"),
        ),
        Product(
            id="arome-001", model="arome", res="001",
            grid=Grid(lat_first=55.4, lon_first=-12.0, dlat=0.01, dlon=0.01, ni=2801, nj=1791),
            run_hours=(0, 3, 6, 9, 12, 15, 18, 21), max_step=51,
            groups=tuple((s, s) for s in range(52)), group_digits=2, single_step_groups=True,
            # AROME 0.01 SP1 has only wind, temperature and humidity; no precipitation.
            packages={"SP1": ("t2m", "rh2m", "u10", "v10", "ws10", "gust10"), "SP2": _CLOUDS,
                      "SP3": ("msl", "ssrd"), "HP1": _UPPER},
            availability_delay_h=2.0, aliases=("arome-0.01",),
        ),
        # ECMWF IFS HRES open data (0.25 degree, every 3 h to 90 h for every run): the fallback
        # when Météo-France is down entirely. One file per step; only our fields are downloaded.
        Product(
            id="ifs-025", model="ifs", res="0p25",
            grid=Grid(lat_first=90.0, lon_first=-180.0, dlat=0.25, dlon=0.25, ni=1440, nj=721,
                      is_global=True),
            run_hours=(0, 6, 12, 18), max_step=90, step_h=3,
            groups=tuple((s, s) for s in range(0, 91, 3)), group_digits=3,
            single_step_groups=True,
            packages={"SFC": ("t2m", "d2m", "u10", "v10", "msl", "ssrd", "tp", "tcc")},
            default_packages=("SFC",), availability_delay_h=8.0, aliases=("ifs", "ecmwf"),
            provider="ecmwf",
            index_names={"t2m": "2t", "d2m": "2d", "u10": "10u", "v10": "10v", "msl": "msl",
                         "ssrd": "ssrd", "tp": "tp", "tcc": "tcc"},
        ),
    ]
}

# Where each provider publishes, when no source is configured for it.
DEFAULT_ECMWF_URL = "https://data.ecmwf.int/forecasts"


def get_product(product_id: str) -> Product:
    """The product named ``product_id`` (or one of its aliases); a clear error otherwise."""
    key = product_id.lower().strip()
    for product in PRODUCTS.values():
        if key == product.id or key in product.aliases:
            return product
    known = ", ".join(PRODUCTS)
    raise ConfigError(f"unknown weather model {product_id!r}: use one of {known}")


def parse_run(text: str) -> datetime:
    """Parse ``2026-11-28T00``, ``2026-11-28T00:00``, ``2026-11-28T00:00:00Z`` or ``2026112800``."""
    raw = text.strip().rstrip("Zz")
    for fmt in ("%Y-%m-%dT%H", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y%m%d%H", "%Y-%m-%d %H:%M"):
        try:
            return datetime.strptime(raw, fmt).replace(tzinfo=UTC)
        except ValueError:
            continue
    raise ConfigError(f"run {text!r} is not a run time: write it like 2026-11-28T00 (UTC)")
