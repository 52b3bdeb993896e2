"""The dashboard's actions (backfill days, retrain a target, re-publish an issue), safely.

- Off unless ``[env.X.dashboard] actions = true`` AND ``AGGREGAT_<ENV>_DASHBOARD_TOKEN`` is set.
- A POST needs the token (the ``X-Aggregat-Token`` header, or the HttpOnly SameSite=Strict
  session cookie the login form sets) AND the CSRF token (``X-CSRF-Token`` header) that pages
  of a logged-in session carry; both are HMACs of the token, so a restart keeps sessions and
  the cookie never holds the token itself.
- Each action calls the same API as the CLI under the environment's run lock (``backfill``
  takes it itself), one at a time in a background thread; its status is polled by the page.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import threading
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import aggregat
from aggregat.config import Environment, dashboard_token, mask
from aggregat.errors import AggregatError

SESSION_COOKIE = "aggregat_session"
TOKEN_HEADER = "x-aggregat-token"
CSRF_HEADER = "x-csrf-token"


def _mac(token: str, purpose: str) -> str:
    return hmac.new(token.encode(), purpose.encode(), hashlib.sha256).hexdigest()


@dataclass
class ActionStatus:
    """One action as the page polls it."""

    id: int
    kind: str
    params: dict[str, Any]
    state: str = "queued"  # queued, running, done, failed
    message: str = ""
    started_at: str | None = None
    ended_at: str | None = None
    result: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class Actions:
    """Authorisation and the background runner of one app."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.token = dashboard_token(env)
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._jobs: dict[int, ActionStatus] = {}
        self._busy: threading.Thread | None = None
        self.on_done: Callable[[], None] | None = None

    # -- authorisation ---------------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self.env.dashboard.actions and self.token is not None

    @property
    def why_disabled(self) -> str:
        var = f"AGGREGAT_{self.env.name.upper()}_DASHBOARD_TOKEN"
        if not self.env.dashboard.actions:
            return (f"actions are off: set [env.{self.env.name}.dashboard] actions = true and "
                    f"export {var}")
        return f"actions are off: export {var}"

    def session_value(self) -> str:
        assert self.token is not None
        return _mac(self.token, "session")

    def csrf_token(self) -> str:
        assert self.token is not None
        return _mac(self.token, "csrf")

    def check_login(self, token: str) -> bool:
        return self.enabled and hmac.compare_digest(token.encode(), self.token.encode())

    def authenticated(self, headers: Any, cookies: Any) -> bool:
        if not self.enabled:
            return False
        header = headers.get(TOKEN_HEADER)
        if header is not None:
            return hmac.compare_digest(header.encode(), self.token.encode())
        cookie = cookies.get(SESSION_COOKIE)
        return cookie is not None and hmac.compare_digest(cookie.encode(),
                                                           self.session_value().encode())

    def csrf_ok(self, headers: Any) -> bool:
        value = headers.get(CSRF_HEADER)
        return value is not None and hmac.compare_digest(value.encode(),
                                                         self.csrf_token().encode())

    # -- running ---------------------------------------------------------------------------
    def status(self, action_id: int) -> ActionStatus | None:
        with self._lock:
            return self._jobs.get(action_id)

    def recent(self, n: int = 10) -> list[ActionStatus]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda a: a.id, reverse=True)[:n]

    def submit(self, kind: str, params: dict[str, Any]) -> ActionStatus:
        """Start ``kind`` in a background thread; refused (state failed) while one runs."""
        with self._lock:
            action = ActionStatus(next(self._ids), kind, params)
            self._jobs[action.id] = action
            if self._busy is not None and self._busy.is_alive():
                action.state, action.message = "failed", "another action is running; wait for it"
                return action
            self._busy = threading.Thread(target=self._run, args=(action,), daemon=True,
                                          name=f"aggregat-action-{action.id}")
            self._busy.start()
        return action

    def _run(self, action: ActionStatus) -> None:
        action.state, action.started_at = "running", _now()
        try:
            action.result = _RUNNERS[action.kind](self.env, **action.params)
            failed = action.result.get("problems")
            action.state = "failed" if failed else "done"
            action.message = mask(action.result.get("summary", ""))
        except AggregatError as exc:  # the lock is held, bad input: one line, as the CLI
            action.state, action.message = "failed", mask(str(exc))
        except Exception as exc:  # noqa: BLE001  (the page must learn it failed)
            action.state = "failed"
            action.message = mask(f"internal error: {type(exc).__name__}: {exc}")
            traceback.print_exc()
        finally:
            action.ended_at = _now()
            if self.on_done is not None:
                self.on_done()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _backfill(env: Environment, since: str, until: str) -> dict[str, Any]:
    report = aggregat.backfill(env, since, until=until)
    return {"summary": f"backfill {since}..{until}: {len(report.steps)} step(s), "
                       f"{len(report.problems)} problem(s)",
            "problems": len(report.problems), "run": report.as_dict()}


def _train(env: Environment, target: str, horizon: str) -> dict[str, Any]:
    with aggregat.run_lock(env, f"aggregat serve: train {target}"):
        results = aggregat.train(env, target, horizon=horizon, force=True)
    bad = [r for r in results if r.failed]
    text = "; ".join(f"{r.target} {r.status} {r.version or ''}"
                     f"{' (promoted)' if r.promoted else ''}{': ' + r.error if r.error else ''}"
                     for r in results)
    return {"summary": f"train: {text}", "problems": len(bad),
            "results": [asdict(r) for r in results]}


def _publish(env: Environment, issue_time: str, targets: list[str] | None = None
             ) -> dict[str, Any]:
    with aggregat.run_lock(env, f"aggregat serve: publish {issue_time}"):
        report = aggregat.publish(env, issue_time, targets)
    rows = getattr(report, "rows", None)
    return {"summary": f"published issue {issue_time}: {rows} rows", "problems": 0}


_RUNNERS: dict[str, Callable[..., dict[str, Any]]] = {
    "backfill": _backfill, "train": _train, "publish": _publish}
