"""Météo-France's authenticated API: credentials (API key or OAuth2 token) and a rate limit.

The API (``public-api.meteofrance.fr``) takes either a key in the ``apikey`` header or an
OAuth2 bearer token obtained with the client-credentials grant (``POST token_url`` with
``grant_type=client_credentials`` and HTTP basic auth). A token is cached, renewed shortly before
it expires and once more when the API answers 401 with it. The API answers 429 with
``Retry-After`` past its rate limit: :class:`RateLimiter` spaces requests below a configured
``requests_per_minute`` across all download threads, and pauses them all after a 429.

Hand-written on urllib3 (already the download client): the token exchange is one POST, and an
OAuth library would bring its own HTTP stack for it.
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Protocol

import urllib3

from aggregat.config import register_secret


class AuthRefused(Exception):
    """The source refused our credentials (HTTP 401/403): no retry there, the file moves on."""


class TokenUnavailable(Exception):
    """The token endpoint could not be reached or answered an error other than a refusal."""


class Credentials(Protocol):
    def headers(self, http: urllib3.PoolManager) -> dict[str, str]:
        """Headers that authenticate a request (may fetch a token)."""

    def refused(self, used: dict[str, str]) -> bool:
        """The API answered 401 to a request sent with ``used``: True if new credentials are
        worth one more try (a renewed token), False when they are simply wrong."""


class ApiKey:
    """The ``apikey`` header."""

    def __init__(self, key: str) -> None:
        register_secret(key)  # already registered by the config; also when built in code
        self._key = key

    def headers(self, http: urllib3.PoolManager) -> dict[str, str]:
        return {"apikey": self._key}

    def refused(self, used: dict[str, str]) -> bool:
        return False


class ClientCredentials:
    """OAuth2 client credentials: one token shared by all threads, renewed before it expires.

    ``renew_margin_s``: a token is renewed when it has less than this left (at most half its
    life), so that a request never leaves with a token about to expire.
    """

    def __init__(self, token_url: str, client_id: str, client_secret: str, *,
                 timeout_s: float = 20.0, renew_margin_s: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        for secret in (client_id, client_secret):
            register_secret(secret)
        self.token_url = token_url
        self._basic = base64.b64encode(f"{client_id}:{client_secret}".encode()).decode()
        register_secret(self._basic)
        self.timeout = urllib3.Timeout(connect=timeout_s, read=timeout_s)
        self.renew_margin_s = renew_margin_s
        self.clock = clock
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self.fetched = 0  # tokens obtained (for tests and logs)

    def headers(self, http: urllib3.PoolManager) -> dict[str, str]:
        with self._lock:  # one thread fetches; the others wait and use its token
            if self._token is None or self.clock() >= self._renew_at:
                self._fetch(http)
            return {"Authorization": f"Bearer {self._token}"}

    def refused(self, used: dict[str, str]) -> bool:
        with self._lock:
            if used.get("Authorization") == f"Bearer {self._token}":
                self._token = None  # this token is dead: the next request gets a new one
                return True
            return self._token is not None  # another thread renewed it meanwhile

    def _fetch(self, http: urllib3.PoolManager) -> None:
        try:
            resp = http.request(
                "POST", self.token_url, body="grant_type=client_credentials",
                headers={"Authorization": f"Basic {self._basic}",
                         "Content-Type": "application/x-www-form-urlencoded"},
                timeout=self.timeout, retries=False)
        except urllib3.exceptions.HTTPError as exc:
            raise TokenUnavailable(f"token endpoint {self.token_url} unreachable "
                                   f"({type(exc).__name__})") from None
        if resp.status in (400, 401, 403):
            raise AuthRefused(f"the token endpoint refused client_id/client_secret "
                              f"(HTTP {resp.status})")
        if resp.status != 200:
            raise TokenUnavailable(f"token endpoint {self.token_url} answered HTTP {resp.status}")
        try:
            payload = json.loads(resp.data)
            token = str(payload["access_token"])
            life = float(payload.get("expires_in", 3600))
        except (ValueError, KeyError, TypeError):
            raise TokenUnavailable(f"token endpoint {self.token_url} answered no "
                                   "access_token") from None
        register_secret(token)
        self._token = token
        self._renew_at = self.clock() + life - min(self.renew_margin_s, life / 2)
        self.fetched += 1


def retry_after_s(resp: urllib3.BaseHTTPResponse) -> float | None:
    """``Retry-After`` in seconds: a number of seconds, or an HTTP date (None when absent or
    unreadable)."""
    value = resp.headers.get("Retry-After", "").strip()
    if value.isdigit():
        return float(value)
    try:
        return max(0.0, (parsedate_to_datetime(value) - datetime.now(UTC)).total_seconds())
    except (TypeError, ValueError):
        return None


class RateLimiter:
    """At most ``per_minute`` requests a minute across threads, evenly spaced (no burst).

    Hand-written: a shared "next free slot" is all it takes, and :meth:`pause` (a 429's
    ``Retry-After`` holds every thread, not only the one that got it) is not in the usual
    rate-limit packages.
    """

    def __init__(self, per_minute: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.clock, self.sleep = clock, sleep
        self._lock = threading.Lock()
        self._next = 0.0
        self._paused_until = 0.0

    def acquire(self) -> None:
        """Wait for this thread's slot (and past any pause that began while it waited)."""
        while True:
            with self._lock:
                now = self.clock()
                if now >= self._paused_until:
                    slot = max(now, self._next)
                    self._next = slot + self.interval
                    if slot <= now:
                        return
                    wait, reserved = slot - now, True
                else:
                    wait, reserved = self._paused_until - now, False
            self.sleep(wait)
            if reserved:
                with self._lock:
                    if self.clock() >= self._paused_until:
                        return

    def pause(self, seconds: float) -> None:
        """No request leaves before ``seconds`` from now (the server said so)."""
        with self._lock:
            self._paused_until = max(self._paused_until, self.clock() + seconds)
            self._next = max(self._next, self._paused_until)
