"""Where weather files come from: named sources, tried in the configured order for every file.

A :class:`Source` turns one file of a run (product, run, package, time group) into what the
download engine (:mod:`aggregat.weather.fetch`) needs: an HTTP URL and its headers
(:class:`OpenDataSource`, the public bucket; :class:`MeteoFranceApiSource`, Météo-France's
authenticated API) or an fsspec path (:class:`MirrorSource`, any store holding the open-data
layout). The location it gives is what the manifest records: it never holds a credential
(the API's key or token travels in a header).

``[env.NAME.weather] sources = ["open-data", "portail"]`` names the order;
``[env.NAME.weather.source.SOURCE]`` tables define them (config.SourceSettings). Without
``sources``, :func:`configured_sources` gives one open-data source at ``weather.base_url``.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import TYPE_CHECKING, Any, ClassVar

import urllib3

from aggregat.config import DEFAULT_BASE_URL, DEFAULT_SOURCE, SourceSettings, mask
from aggregat.errors import ConfigError
from aggregat.weather.mfapi import (
    ApiKey,
    AuthRefused,
    ClientCredentials,
    Credentials,
    RateLimiter,
    TokenUnavailable,
    retry_after_s,
)
from aggregat.weather.products import DEFAULT_ECMWF_URL, Product

if TYPE_CHECKING:
    from aggregat.config import Environment, WeatherSettings

# What a probe says of one file at one source.
PRESENT, MISSING, INCOMPLETE, ERROR = "present", "missing", "incomplete", "error"
# What :meth:`Source.check` says when the source asked us to slow down (HTTP 429): it answered,
# so it is alive; the probe is asked again once its Retry-After has passed (an error after that).
LIMITED = "rate-limited"
# A probe waits out a 429's Retry-After up to this long (the header is the server's to set).
_PROBE_MAX_PAUSE_S = 60.0
_HEAD = 16  # GRIB indicator section: "GRIB", edition (byte 7), message length (GRIB2: bytes 8-15)
_END = b"7777"  # the end of every GRIB message
_PROBE_TIMEOUT_S = 20.0


class Source:
    """One place to fetch weather files from; tried in turn by :func:`fetch_run`.

    ``name``: its name in the config (recorded per file in the manifest); ``address``: its base
    URL or path, masked, for messages; ``setting``: where it is configured, for messages.
    """

    kind: ClassVar[str] = ""
    is_http: ClassVar[bool] = True
    provider: ClassVar[str] = "meteofrance"  # whose files it serves (Product.provider)

    def __init__(self, name: str, base_url: str, *, setting: str = "",
                 requests_per_minute: float | None = None) -> None:
        self.name = name
        self.base_url = base_url
        self.setting = setting or f"weather.source.{name}"
        self.limiter = RateLimiter(requests_per_minute)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r}, {self.address!r})"

    @property
    def address(self) -> str:
        return mask(self.base_url)

    @property
    def host(self) -> str:
        """The host (and port) requests go to: what "unreachable" is about."""
        return urllib3.util.parse_url(self.base_url).netloc or self.base_url

    def location(self, product: Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        """The file's URL (or fsspec path) at this source; never holds a credential."""
        raise NotImplementedError

    def headers(self, http: urllib3.PoolManager) -> dict[str, str]:
        """Headers authenticating a request here (may fetch a token); raises
        :class:`~aggregat.weather.mfapi.AuthRefused` when the credentials are refused."""
        return {}

    def refused(self, used: dict[str, str]) -> bool:
        """A request sent with headers ``used`` got HTTP 401: True if it is worth one more
        try with fresh credentials (an expired token), False when they are plainly wrong."""
        return False

    def refusal(self, detail: str) -> str:
        """One line saying the credentials were refused and which settings to check."""
        return f"{self.name} refused our credentials ({detail}); check [{self.setting}]"

    def probe(self, product: Product, run: datetime, package: str, group: tuple[int, int],
              http: urllib3.PoolManager, timeout_s: float = _PROBE_TIMEOUT_S) -> str:
        """Whether one file is here, whole, without downloading it: ``"present"``,
        ``"missing"``, ``"incomplete"`` (there, but not a whole GRIB file yet: see
        :func:`grib_state`) or ``"error"`` (no answer: network, server error, refused
        credentials, a rate limit)."""
        state = self.check(product, run, package, group, http, timeout_s)[0]
        return ERROR if state == LIMITED else state

    def check(self, product: Product, run: datetime, package: str, group: tuple[int, int],
              http: urllib3.PoolManager, timeout_s: float = _PROBE_TIMEOUT_S) -> tuple[str, str]:
        """:meth:`probe` with why, for messages: ``(state, detail)``. Two tiny ranged GETs:
        the first 16 bytes (the GRIB indicator and the file's size), then the last 4. A 429
        gives :data:`LIMITED` and holds the source's requests for its Retry-After."""
        url = self.location(product, run, package, group)
        timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        try:
            for renewed in (False, True):
                auth = self.headers(http)
                status, head, total, ranged = self._ranged(http, url, auth, f"bytes=0-{_HEAD - 1}",
                                                           timeout)
                if status == 401 and not renewed and self.refused(auth):
                    continue
                break
            if status == 416:  # nothing in the range: an empty (or shrunk) file
                return INCOMPLETE, "empty"
            if status not in (200, 206):
                return self._judge(status)
            tail = None
            if ranged and total is not None and total >= _HEAD:  # else the tail costs the file
                status, tail, _, ranged = self._ranged(
                    http, url, auth, f"bytes={total - len(_END)}-{total - 1}", timeout)
                if status not in (200, 206):
                    return self._judge(status)
                tail = tail if ranged else None
            return grib_state(head, total, tail)
        except AuthRefused as exc:
            return ERROR, str(exc)
        except (TokenUnavailable, urllib3.exceptions.HTTPError) as exc:
            return ERROR, f"{type(exc).__name__}: {exc}"

    def _ranged(self, http: urllib3.PoolManager, url: str, auth: dict[str, str], rng: str,
                timeout: urllib3.Timeout) -> tuple[int, bytes, int | None, bool]:
        """(status, first bytes of the range, the whole file's size, whether the server
        honoured the range) of one ranged GET; a server ignoring Range is never read whole."""
        self.limiter.acquire()
        resp = http.request("GET", url, headers={**auth, "Range": rng}, timeout=timeout,
                            retries=False, redirect=True, preload_content=False)
        try:
            if resp.status == 429:  # every thread of this source waits, not only this one
                wait = retry_after_s(resp)
                if wait:
                    self.limiter.pause(min(wait, _PROBE_MAX_PAUSE_S))
            if resp.status == 416:
                return 416, b"", 0, True
            body = resp.read(_HEAD) if resp.status in (200, 206) else b""
            return resp.status, body, _full_size(resp), resp.status == 206
        finally:
            if resp.status == 200:
                resp.close()
            else:
                resp.drain_conn()
            resp.release_conn()

    def _judge(self, status: int) -> tuple[str, str]:
        if status in (404, 410):
            return MISSING, f"HTTP {status}"
        if status == 429:
            return LIMITED, "HTTP 429 (rate limited)"
        if status == 401:
            return ERROR, self.refusal(f"HTTP {status}")
        return ERROR, f"HTTP {status}"


def grib_state(head: bytes, total: int | None, tail: bytes | None) -> tuple[str, str]:
    """The one rule of a probe, for every kind of source: a file is present when it starts with
    a GRIB indicator section, is at least as long as the first message it announces, and ends
    with ``7777`` (``tail`` None: not known, e.g. a server ignoring Range); else incomplete (a
    file still being written or copied)."""
    if len(head) < _HEAD or head[:4] != b"GRIB":
        return INCOMPLETE, "does not start with GRIB" if head else "empty"
    if total is None or total < _HEAD:
        return INCOMPLETE, f"{total} bytes"
    # GRIB2 states its first message's length in 8 bytes, GRIB1 in 3.
    first = int.from_bytes(head[8:16] if head[7] == 2 else head[4:7], "big")
    if total < first:
        return INCOMPLETE, f"{total} bytes, shorter than its first message ({first})"
    if tail is not None and tail != _END:
        return INCOMPLETE, "does not end with 7777"
    return PRESENT, f"{total} bytes"


def _full_size(resp: urllib3.BaseHTTPResponse) -> int | None:
    """The whole file's size: ``Content-Range: bytes a-b/TOTAL`` of a 206, else Content-Length."""
    value = resp.headers.get("Content-Range", "")
    if resp.status == 206 and "/" in value:
        total = value.rsplit("/", 1)[1].strip()
        return int(total) if total.isdigit() else None
    length = resp.headers.get("Content-Length", "")
    return int(length) if length.isdigit() else None


class OpenDataSource(Source):
    """Météo-France's public bucket layout over HTTP:
    ``{base_url}/{run}/{model}/{res}/{PKG}/{model}__{res}__{PKG}__{group}__{run}.grib2``."""

    kind = "open-data"

    def location(self, product: Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        return product.url(self.base_url, run, package, group)

    def _judge(self, status: int) -> tuple[str, str]:
        if status == 403:  # S3 answers 403 for an absent key where listing is not allowed
            return MISSING, "HTTP 403"
        return super()._judge(status)


class MeteoFranceApiSource(Source):
    """Météo-France's authenticated API (the DPPaquet services, products.Product.api_url),
    with an API key or an OAuth2 token, and a cap on requests per minute."""

    kind = "meteofrance-api"

    def __init__(self, name: str, base_url: str, credentials: Credentials, *,
                 auth_settings: str, setting: str = "",
                 requests_per_minute: float | None = None) -> None:
        super().__init__(name, base_url, setting=setting, requests_per_minute=requests_per_minute)
        self.credentials = credentials
        self.auth_settings = auth_settings

    def location(self, product: Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        return product.api_url(self.base_url, run, package, group)

    def headers(self, http: urllib3.PoolManager) -> dict[str, str]:
        return self.credentials.headers(http)

    def refused(self, used: dict[str, str]) -> bool:
        return self.credentials.refused(used)

    def refusal(self, detail: str) -> str:
        return (f"{self.name} refused our credentials ({detail}); check [{self.setting}] "
                f"{self.auth_settings}")


class MirrorSource(Source):
    """The open-data layout at any fsspec URL or folder (a company bucket, another
    environment's store), copied with fsspec: no HTTP, no credentials of ours."""

    kind = "mirror"
    is_http = False

    def __init__(self, name: str, base_url: str, *, setting: str = "",
                 storage_options: dict[str, Any] | None = None) -> None:
        super().__init__(name, base_url, setting=setting)
        import fsspec.core

        self.fs, self.root = fsspec.core.url_to_fs(base_url, **(storage_options or {}))

    @property
    def host(self) -> str:
        return self.address

    def location(self, product: Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        return f"{self.base_url.rstrip('/')}/{product.archive_rel(run, package, group)}"

    def path(self, product: Product, run: datetime, package: str,
             group: tuple[int, int]) -> str:
        """The file's path for :attr:`fs`."""
        return f"{self.root.rstrip('/')}/{product.archive_rel(run, package, group)}"

    def check(self, product: Product, run: datetime, package: str, group: tuple[int, int],
              http: urllib3.PoolManager, timeout_s: float = _PROBE_TIMEOUT_S) -> tuple[str, str]:
        path = self.path(product, run, package, group)
        try:
            size = self.fs.size(path)
            if size is None or size < _HEAD:
                return INCOMPLETE, f"{size} bytes"
            head = self.fs.cat_file(path, start=0, end=_HEAD)
            tail = self.fs.cat_file(path, start=size - len(_END), end=size)
        except FileNotFoundError:
            return MISSING, "not in the mirror"
        except OSError as exc:
            return ERROR, f"{type(exc).__name__}: {mask(str(exc))}"
        return grib_state(head, size, tail)


class EcmwfSource(Source):
    """ECMWF's open data (``{base}/{yyyymmdd}/{HH}z/ifs/0p25/oper/...-{step}h-oper-fc.grib2``):
    one file per step holding every field; :mod:`aggregat.weather.fetch` reads its ``.index``
    and downloads only the catalogue's fields, by byte range."""

    kind = "ecmwf-open-data"
    provider = "ecmwf"

    def location(self, product: Product, run: datetime, package: str,
                 group: tuple[int, int]) -> str:
        return product.url(self.base_url, run, package, group)


# One source object per configured source and process: a backfill's runs, the availability
# probes and the fetches share its OAuth token, its requests-per-minute cap and its connections.
_MADE: dict[tuple, Source] = {}
_MADE_LOCK = threading.Lock()


def make_source(name: str, settings: SourceSettings, *, setting: str = "",
                timeout_s: float = 20.0) -> Source:
    """The source object of one ``[weather.source.NAME]`` table (the same object for the same
    settings within a process)."""
    setting = setting or f"weather.source.{name}"
    key = (name, settings.model_dump_json(), setting, timeout_s)
    with _MADE_LOCK:
        if key not in _MADE:
            _MADE[key] = _new_source(name, settings, setting, timeout_s)
        return _MADE[key]


def forget_sources() -> None:
    """Drop the sources made so far (their tokens and caps): the next ones are made anew."""
    with _MADE_LOCK:
        _MADE.clear()


def _new_source(name: str, settings: SourceSettings, setting: str, timeout_s: float) -> Source:
    rpm = settings.requests_per_minute
    if settings.kind == "open-data":
        return OpenDataSource(name, settings.base_url, setting=setting, requests_per_minute=rpm)
    if settings.kind == "ecmwf-open-data":
        return EcmwfSource(name, settings.base_url, setting=setting, requests_per_minute=rpm)
    if settings.kind == "mirror":
        return MirrorSource(name, settings.base_url, setting=setting,
                            storage_options=settings.storage_options)
    credentials: Credentials
    if settings.api_key:
        credentials, what = ApiKey(settings.api_key), "api_key"
    else:
        assert settings.client_id and settings.client_secret  # config checked it
        credentials = ClientCredentials(settings.token_url, settings.client_id,
                                        settings.client_secret, timeout_s=timeout_s)
        what = "client_id, client_secret and token_url"
    return MeteoFranceApiSource(name, settings.base_url, credentials, auth_settings=what,
                                setting=setting, requests_per_minute=rpm)


def open_data(base_url: str = DEFAULT_BASE_URL, name: str = DEFAULT_SOURCE,
              setting: str = "weather") -> OpenDataSource:
    """One open-data source at ``base_url`` (what ``weather.base_url`` and ``--base-url``
    mean)."""
    return OpenDataSource(name, base_url, setting=setting)


def source_at(base_url: str, product: Product) -> Source:
    """The one source at ``base_url`` in ``product``'s layout (``--base-url``)."""
    if product.provider == "ecmwf":
        return EcmwfSource("ecmwf", base_url)
    return open_data(base_url)


def configured_sources(env_settings: Environment | WeatherSettings,
                       only: list[str] | None = None, product: Product | None = None
                       ) -> list[Source]:
    """The sources of an environment (or its weather settings), in the order they are tried:
    ``weather.sources``, else the one open-data source at ``weather.base_url``. ``only``:
    these configured sources, in this order (an unknown name is a ConfigError). ``product``:
    only the sources that serve it (an ECMWF product: the ``ecmwf-open-data`` sources, else
    ECMWF's own address; a Météo-France product: the others)."""
    weather = getattr(env_settings, "weather", env_settings)
    env_name = getattr(env_settings, "name", None)
    table = f"env.{env_name}.weather" if env_name else "weather"
    if not weather.sources:
        sources: list[Source] = [open_data(weather.base_url or DEFAULT_BASE_URL,
                                           setting=table)]
    else:
        sources = [make_source(name, weather.source[name], setting=f"{table}.source.{name}",
                               timeout_s=min(weather.timeout_s, 20.0))
                   for name in weather.sources]
    if only:
        by_name = {s.name: s for s in sources}
        unknown = [n for n in only if n not in by_name]
        if unknown:
            raise ConfigError(f"unknown weather source {', '.join(map(repr, unknown))}: "
                              f"configured: {', '.join(by_name)} ([{table}] sources)",
                              param="sources")
        sources = [by_name[n] for n in only]
    if product is not None:
        sources = [s for s in sources if s.provider == product.provider]
        if not sources and product.provider == "ecmwf":
            sources = [EcmwfSource("ecmwf", DEFAULT_ECMWF_URL, setting=table)]
    return sources
