"""Alerts that reach people: a message to the environment's channels (``[alerts] channels``,
apprise URLs: e-mail, Slack / Teams / generic JSON webhooks) when a job fails, a health check
turns warning or failed, or data is late.

A problem has an identity (:attr:`Problem.key`):

- ``job:<job>``: the last run of job ``<job>`` had failed or partial steps (from the job's own
  outcome, after each run, and from the health report's "last <job> run");
- ``late:<check>``: a dataset is late (health's ``data`` and ``publish`` checks: weather run,
  measured load, forecast issue, last publish);
- ``health:<section>/<check>``: any other health check (model age, registry, lock, a slow run).

Each problem is alerted once while it stays open (again only if its status changes, warning to
failed or back), then once "resolved" when it clears. The state (open problems, per-channel send
counts) is one JSON file per environment in the bank's hidden ``.alerts`` folder, written
atomically and masked. With ``digest = true``, a cycle that opens or clears anything sends one
message listing every open problem instead.

Sending never fails a job: a channel that fails is logged, counted in the state and shown by
``aggregat health`` (section ``alerts``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aggregat.config import Environment, mask, mask_json
from aggregat.ops.lock import exclusive
from aggregat.results import AlertReport

if TYPE_CHECKING:
    from aggregat.ops.health import HealthReport
    from aggregat.results import RunReport

log = logging.getLogger(__name__)

STATE = ".alerts/state.json"  # under the bank's root; "." hides it from the bank's datasets
# Held while the state is read, the alerts sent and the state written: two evaluations at once
# (a job's hook and the scheduler's check) would otherwise both see a problem as new.
STATE_LOCK = ".alerts/state.lock"
WARNING, FAILED, RESOLVED, TEST = "warning", "failed", "resolved", "test"

# Runbook section (an anchor of docs/runbook.md) of each kind of problem.
_ANCHORS = {"job": "job-failed", "weather": "late-weather", "load": "late-load",
            "forecast": "late-forecast", "publish": "late-publish", "model": "model",
            "lock": "run-lock", "runs": "slow-run", "alerts": "alert-channels"}


@dataclass(frozen=True)
class Problem:
    """One open problem of an environment."""

    key: str  # its identity: job:daily, late:weather arome-0025, health:model/portfolio
    status: str  # warning | failed
    what: str  # one line: "job daily: 2 step(s) failed or partial"
    error: str = ""  # the one-line error or detail (masked)
    anchor: str = ""  # the runbook section


def runbook_link(env: Environment, anchor: str) -> str:
    """Where "what to do" points: ``[alerts] runbook_url`` and the section's anchor."""
    return f"{env.alerts.runbook_url}#{anchor}" if anchor else env.alerts.runbook_url


# -- problems ----------------------------------------------------------------------------------
def run_problems(report: RunReport) -> list[Problem]:
    """The problem of a job run's outcome: ``job:<job>`` when any step failed or was partial."""
    bad = report.problems
    if not bad:
        return []
    steps = "; ".join(f"{s.step} {s.partition}: {s.error or s.status}" for s in bad[:3])
    more = f" (+{len(bad) - 3} more)" if len(bad) > 3 else ""
    failed = any(s.status == "failed" for s in bad)
    return [Problem(f"job:{report.job}", FAILED if failed else WARNING,
                    f"job {report.job}: {len(bad)} step(s) failed or partial (run "
                    f"{report.run_id})", mask(steps + more), _ANCHORS["job"])]


def _job_of(item_name: str) -> str:
    """``last daily run`` -> ``daily``."""
    return item_name.removeprefix("last ").removesuffix(" run")


def health_problems(report: HealthReport) -> tuple[list[Problem], set[str]]:
    """(problems, jobs seen) of a health report. ``steps`` items are left out: they detail the
    run that ``job:<job>`` alerts on (its message names the failed steps)."""
    problems, jobs = [], set()
    for item in report.items:
        if item.section == "runs" and item.name.startswith("last "):
            jobs.add(_job_of(item.name))
        if item.status not in (WARNING, FAILED) or item.section == "steps":
            continue
        shown = item.as_dict()  # masked
        detail = " ".join(f"{shown['value']}: {shown['detail']}".split()).strip(": ")
        statuses = item.data.get("statuses") or {}
        if item.section == "runs" and ("failed" in statuses or "partial" in statuses):
            job = _job_of(item.name)
            problems.append(Problem(f"job:{job}", item.status, f"job {job}: last run had "
                                    "failed or partial steps", detail, _ANCHORS["job"]))
        elif item.section in ("data", "publish"):
            kind = "publish" if item.section == "publish" else item.name.split(" ")[0]
            problems.append(Problem(f"late:{item.name}", item.status, f"{shown['name']} is late"
                                    f" or missing ({item.status})", detail,
                                    _ANCHORS.get(kind, "late-data")))
        else:
            problems.append(Problem(f"health:{item.section}/{item.name}", item.status,
                                    f"health check {item.section}/{shown['name']}: "
                                    f"{item.status}", detail,
                                    _ANCHORS.get(item.section, "health-checks")))
    return problems, jobs


# -- state -------------------------------------------------------------------------------------
def _store(env: Environment):
    from aggregat.storage import Store

    return Store(env.bank)


def read_state(env: Environment) -> dict[str, Any]:
    """The environment's alert state (``open`` problems, ``channels`` counts); empty if none."""
    store = _store(env)
    try:
        if store.exists(STATE):
            return json.loads(store.read_bytes(STATE))
    except (OSError, ValueError) as exc:  # unreadable state: alert again rather than never
        log.warning("alert state %s unreadable (%s): starting afresh", store.uri(STATE), exc)
    return {}


def _write_state(env: Environment, state: dict[str, Any]) -> None:
    _store(env).write_bytes(STATE, mask_json(state, indent=1, sort_keys=True).encode())


# -- channels ----------------------------------------------------------------------------------
def channel_label(index: int, url: str) -> str:
    """A channel as shown and stored: its number, scheme and host (never the user, password,
    path or query, which may hold a token)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return f"#{index + 1}"
    return mask(f"#{index + 1} {parts.scheme}://{host}")


def _send_one(url: str, title: str, body: str, kind: str, timeout_s: float) -> str | None:
    """Send one message to one channel; None when delivered, else the reason (masked)."""
    import apprise

    client = apprise.Apprise()
    with apprise.LogCapture(level=logging.WARNING) as captured:
        if not client.add(url):
            return "apprise does not understand this URL (see https://appriseit.com/services/)"
        for plugin in client:  # bounded: an unreachable server must not hold the job
            plugin.socket_connect_timeout = plugin.socket_read_timeout = timeout_s
        notify_type = {FAILED: apprise.NotifyType.FAILURE, WARNING: apprise.NotifyType.WARNING,
                       RESOLVED: apprise.NotifyType.SUCCESS}.get(kind, apprise.NotifyType.INFO)
        try:
            ok = client.notify(body=mask(body), title=mask(title), notify_type=notify_type,
                               body_format=apprise.NotifyFormat.TEXT)
        except Exception as exc:  # a plugin bug must not fail the job either
            return mask(" ".join(f"{type(exc).__name__}: {exc}".split()))
        lines = [ln for ln in captured.getvalue().splitlines() if ln.strip()]
    if ok:
        return None
    return mask(" ".join(lines[-1].split(" - ", 2)[-1].split())) if lines else "not delivered"


def _deliver(env: Environment, state: dict[str, Any], title: str, body: str, kind: str,
             report: AlertReport, now: datetime,
             send: Callable[[str, str, str, str, float], str | None]) -> bool:
    """Send to every channel, count each outcome in ``state``; True if any channel took it."""
    counts = state.setdefault("channels", {})
    delivered = False
    for i, url in enumerate(env.alerts.channels):
        label = channel_label(i, url)
        entry = counts.setdefault(label, {"sent": 0, "failed": 0})
        reason = send(url, title, body, kind, env.alerts.timeout_s)
        if reason is None:
            delivered = True
            entry["sent"] += 1
            entry["last_ok_at"] = now.isoformat()
            report.messages += 1
        else:
            entry["failed"] += 1
            entry["last_failed_at"] = now.isoformat()
            entry["last_error"] = reason
            if label not in report.failed_channels:
                report.failed_channels.append(label)
            log.warning("alert channel %s failed: %s", label, reason)
    return delivered


# -- messages ----------------------------------------------------------------------------------
def _when(iso: str) -> str:
    return f"{datetime.fromisoformat(iso).astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _message(env: Environment, problem: dict[str, Any], resolved: bool, now: datetime
             ) -> tuple[str, str]:
    state = "resolved" if resolved else problem["status"].upper()
    title = f"[aggregat {env.name}] {state}: {problem['what']}"
    lines = [f"Environment: {env.name}", f"What: {problem['what']}",
             f"When: {_when(problem['since'])} (first seen)"]
    if resolved:
        lines.append(f"Resolved: {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC")
    if problem.get("error"):
        lines.append(f"{'Was' if resolved else 'Error'}: {problem['error']}")
    if not resolved:
        lines.append(f"What to do: {runbook_link(env, problem.get('anchor', ''))}")
    return title, "\n".join(lines)


def _digest(env: Environment, open_: dict[str, dict[str, Any]], opened: list[str],
            cleared: dict[str, dict[str, Any]], now: datetime) -> tuple[str, str, str]:
    worst = FAILED if any(p["status"] == FAILED for p in open_.values()) else (
        WARNING if open_ else RESOLVED)
    title = (f"[aggregat {env.name}] {len(open_)} open problem(s), {len(opened)} new, "
             f"{len(cleared)} resolved")
    lines = [f"Environment: {env.name}", f"Checked: {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC",
             ""]
    for key, p in sorted(open_.items()):
        new = " (new)" if key in opened else ""
        lines.append(f"- {p['status'].upper()}{new}: {p['what']} since {_when(p['since'])}"
                     + (f"; {p['error']}" if p.get("error") else ""))
        lines.append(f"  What to do: {runbook_link(env, p.get('anchor', ''))}")
    for p in cleared.values():
        lines.append(f"- resolved: {p['what']} (since {_when(p['since'])})")
    return title, "\n".join(lines), worst


# -- evaluate ----------------------------------------------------------------------------------
def evaluate(env: Environment, problems: Iterable[Problem], in_scope: Callable[[str], bool],
             now: datetime | None = None, send=_send_one) -> AlertReport:
    """Alert the new ``problems``, resolve the open ones ``in_scope`` that are gone, save the
    state. Without channels, nothing happens."""
    now = now or datetime.now(UTC)
    report = AlertReport(env.name, channels=len(env.alerts.channels))
    if not env.alerts.channels:
        return report
    with exclusive(env.bank, STATE_LOCK, what="the alert state"):
        return _evaluate(env, problems, in_scope, now, send, report)


def _evaluate(env: Environment, problems: Iterable[Problem], in_scope: Callable[[str], bool],
              now: datetime, send, report: AlertReport) -> AlertReport:
    state = read_state(env)
    open_: dict[str, dict[str, Any]] = state.setdefault("open", {})
    current = {p.key: p for p in problems}
    opened: list[str] = []
    for key, p in current.items():
        known = open_.get(key)
        if known and known["status"] == p.status and known.get("alerted_at"):
            report.suppressed.append(key)
            known.update(error=p.error, what=p.what)
            continue
        since = known["since"] if known else now.isoformat()
        open_[key] = {**asdict(p), "since": since, "alerted_at": None}
        opened.append(key)
    cleared = {k: open_.pop(k) for k in [k for k in open_ if in_scope(k) and k not in current]}
    if env.alerts.digest:
        if opened or cleared:
            title, body, kind = _digest(env, open_, opened, cleared, now)
            delivered = _deliver(env, state, title, body, kind, report, now, send)
            for key in opened:
                open_[key]["alerted_at"] = now.isoformat() if delivered else None
                (report.sent if delivered else report.unsent).append(key)
        report.resolved = list(cleared)
    else:
        for key in opened:
            title, body = _message(env, open_[key], False, now)
            if _deliver(env, state, title, body, open_[key]["status"], report, now, send):
                open_[key]["alerted_at"] = now.isoformat()
                report.sent.append(key)
            else:
                report.unsent.append(key)
        for key, p in cleared.items():
            if p.get("alerted_at"):  # never alerted (all channels failed): nothing to clear
                title, body = _message(env, p, True, now)
                _deliver(env, state, title, body, RESOLVED, report, now, send)
            report.resolved.append(key)
    state["env"], state["updated_at"] = env.name, now.isoformat()
    _write_state(env, state)
    return report


def after_run(env: Environment, run: RunReport, now: datetime | None = None) -> AlertReport:
    """The job hook: alert ``job:<job>`` if the run had problems, resolve it if it ran clean.
    Never raises: an alerting problem is logged, the job's outcome stands."""
    try:
        key = f"job:{run.job}"
        return evaluate(env, run_problems(run), lambda k: k == key, now)
    except Exception as exc:
        log.warning("alerts after %s run: %s: %s", run.job, type(exc).__name__, mask(str(exc)))
        return AlertReport(env.name, channels=len(env.alerts.channels), error=mask(str(exc)))


def after_health(env: Environment, health: HealthReport) -> AlertReport:
    """The health hook: every problem the report shows, and the clearing of those it no longer
    shows (``job:<job>`` only for jobs the report has a last run of)."""
    problems, jobs = health_problems(health)

    def in_scope(key: str) -> bool:
        kind, _, name = key.partition(":")
        return kind in ("late", "health") or (kind == "job" and name in jobs)

    return evaluate(env, problems, in_scope, health.checked_at)


def check(env: Environment, now: datetime | None = None) -> AlertReport:
    """Evaluate the health of ``env`` now and send what is due (``aggregat alerts check``)."""
    from aggregat.ops.health import check_health

    return after_health(env, check_health(env, now))


def send_test(env: Environment, text: str | None = None, now: datetime | None = None,
              send=_send_one) -> AlertReport:
    """Send one test message (or ``text``) to every channel; the problems are left alone."""
    from aggregat.errors import ConfigError

    if not env.alerts.channels:
        raise ConfigError(f"env {env.name} has no alert channel: add channels = [\"…\"] to "
                          f"[env.{env.name}.alerts] (apprise URLs, docs/operations.md)")
    now = now or datetime.now(UTC)
    report = AlertReport(env.name, channels=len(env.alerts.channels))
    body = text or (f"Environment: {env.name}\nWhat: a test message from `aggregat alerts test`"
                    f"\nWhen: {now.astimezone(UTC):%Y-%m-%d %H:%M} UTC\nWhat to do: nothing; "
                    f"alerts reach you ({runbook_link(env, 'alerts')})")
    with exclusive(env.bank, STATE_LOCK, what="the alert state"):
        state = read_state(env)
        delivered = _deliver(env, state, f"[aggregat {env.name}] test alert", body, TEST, report,
                             now, send)
        (report.sent if delivered else report.unsent).append(TEST)
        state["env"] = env.name
        _write_state(env, state)
    return report
