"""Alerts reach people: a real SMTP server (aiosmtpd, with a login) and a webhook receiver on
loopback receive what apprise sends after job runs and health checks, once per problem, then
"resolved"; a failing channel never fails the job; a password of any characters works and never
leaks into messages, logs or stored state."""

from __future__ import annotations

import email
import json
import logging
import socket
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from ops_world import DAYS, child_env, make_env

import aggregat
from aggregat.errors import ConfigError
from aggregat.ops.health import FAILED, OK, HealthReport

PASSWORD = "p@ss/w:o#r%d"
DAY = DAYS[-1]
REFUSED = "http://127.0.0.1:1/pnt"  # nothing listens on port 1: every fetch fails


def password_forms(secret: str = PASSWORD) -> set[str]:
    return {secret, quote(secret, safe=""), quote(secret), quote_plus(secret),
            json.dumps(secret)[1:-1]}


def assert_no_password(text: str, where: str) -> None:
    found = [f for f in password_forms() if f in text]
    assert not found, f"the SMTP password appears in {where}: {found}"


class Inbox:
    """Mails an aiosmtpd server accepted after a login with the right password."""

    def __init__(self) -> None:
        self.mails: list[email.message.Message] = []
        self.logins: list[tuple[str, str]] = []

    async def handle_DATA(self, server, session, envelope):  # aiosmtpd handler hook
        self.mails.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def authenticate(self, server, session, envelope, mechanism, auth_data):
        from aiosmtpd.smtp import AuthResult, LoginPassword

        if not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == ("ops", PASSWORD))

    def texts(self) -> list[str]:
        """Subject and plain-text body of each mail."""
        out = []
        for mail in self.mails:
            part = next(p for p in mail.walk() if p.get_content_type() == "text/plain")
            out.append(f"{mail['Subject']}\n{part.get_payload(decode=True).decode()}")
        return out


def _free_port() -> int:
    with socket.socket() as s:  # aiosmtpd's Controller cannot bind port 0 (it probes the port)
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    """(inbox, port) of an SMTP server on loopback requiring login ops / PASSWORD, no TLS."""
    from aiosmtpd.controller import Controller

    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port,
                            authenticator=inbox.authenticate, auth_require_tls=False)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture
def webhook():
    """(posts, port) of an HTTP receiver on loopback: every JSON body POSTed to it."""
    posts: list[dict] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            posts.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield posts, server.server_port
    finally:
        server.shutdown()
        server.server_close()


def _texts(posts: list[dict]) -> list[str]:
    return [f"{p['title']}\n{p['message']}" for p in posts]


def alerts_section(smtp_port: int | None, hook_port: int | None, digest: bool = False,
                   extra_channels: tuple[str, ...] = ()) -> str:
    channels = list(extra_channels)
    if smtp_port:
        channels.append(f"mailto://ops:${{SMTP_PASSWORD}}@127.0.0.1:{smtp_port}"
                        "?to=ops@example.com&from=aggregat@example.com&mode=insecure")
    if hook_port:
        channels.append(f"json://127.0.0.1:{hook_port}/aggregat")
    return (f"[env.test.alerts]\nchannels = {json.dumps(channels)}\n"
            f"digest = {'true' if digest else 'false'}\nrunbook_url = "
            "\"https://aggregat.example.com/runbook/\"\n")


@pytest.fixture
def world(tmp_path, measured, monkeypatch):
    """``make(alerts_toml, base_url)`` -> the environment ``test`` (SMTP password exported)."""
    monkeypatch.setenv("AGGREGAT_TEST_SMTP_PASSWORD", PASSWORD)
    monkeypatch.chdir(tmp_path)
    state = {"config": None}

    def make(alerts: str, base_url: str = REFUSED):
        if state["config"] is None:
            state["config"] = make_env(tmp_path, base_url, measured, extra=alerts)
        else:  # same root and energy DB; another weather server
            text = state["config"].read_text()
            old = text.split('base_url = "', 1)[1].split('"', 1)[0]
            state["config"].write_text(text.replace(old, base_url))
        return aggregat.open_env("test", state["config"])

    return make


def _files_text(root: Path) -> str:
    return "".join(p.read_bytes().decode("utf-8", "replace") for p in root.rglob("*")
                   if p.is_file())


@pytest.mark.slow
def test_a_failed_run_alerts_every_channel_once_then_resolved(world, smtp, webhook, archive,
                                                              tmp_path, caplog, capsys):
    from aggregat.weather.loopback import serve_folder

    caplog.set_level(logging.DEBUG)
    inbox, smtp_port = smtp
    posts, hook_port = webhook
    env = world(alerts_section(smtp_port, hook_port))

    first = aggregat.daily(env, DAY)
    assert not first.ok and first.alerts.sent == ["job:daily"] and first.alerts.ok
    assert len(inbox.mails) == 1 and len(posts) == 1
    assert inbox.logins == [("ops", PASSWORD)]  # the odd password reached the server intact
    for text in (inbox.texts()[0], _texts(posts)[0]):
        assert "[aggregat test] FAILED: job daily" in text
        assert "Environment: test" in text and "When: " in text
        assert f"fetch arome-0025/{DAY:%Y-%m-%d}T00Z" in text  # the one-line error
        assert "What to do: https://aggregat.example.com/runbook/#job-failed" in text
    assert posts[0]["type"] == "failure"

    second = aggregat.daily(env, DAY)  # the same problem again: nothing new is sent
    assert not second.ok and second.alerts.suppressed == ["job:daily"] and not second.alerts.sent
    assert len(inbox.mails) == 1 and len(posts) == 1

    with serve_folder(archive) as base_url:
        good = aggregat.daily(world("", base_url), DAY)
    assert good.ok, good.problems
    assert good.alerts.resolved == ["job:daily"]
    assert len(inbox.mails) == 2 and len(posts) == 2
    for text in (inbox.texts()[1], _texts(posts)[1]):
        assert text.startswith("[aggregat test] resolved: job daily")
    assert posts[1]["type"] == "success"

    again = aggregat.daily(world("", base_url), DAY)  # still good: nothing more
    assert again.ok and not again.alerts.sent and not again.alerts.resolved
    assert len(inbox.mails) == 2 and len(posts) == 2

    state = tmp_path / "data" / "bank" / ".alerts" / "state.json"
    assert json.loads(state.read_text())["open"] == {}
    assert_no_password("\n".join(inbox.texts() + _texts(posts)), "the messages")
    assert_no_password(caplog.text, "the logs")
    assert_no_password("".join(capsys.readouterr()), "stdout/stderr")
    assert_no_password(_files_text(tmp_path / "data"), "the files under the root")


@pytest.mark.slow
def test_digest_sends_one_message_per_cycle_listing_every_open_problem(world, webhook, smtp):
    inbox, smtp_port = smtp
    posts, hook_port = webhook
    env = world(alerts_section(smtp_port, hook_port, digest=True))

    first = aggregat.check_alerts(env)  # nothing ran yet: no data, no runs, no model
    assert len(first.sent) >= 4 and first.ok
    assert len(posts) == 1 and len(inbox.mails) == 1
    body = posts[0]["message"]
    for key in first.sent:
        assert key.split(":", 1)[1].split("/")[-1] in body
    assert body.count("What to do: ") == len(first.sent)
    assert "late:weather arome-0025" in first.sent

    second = aggregat.check_alerts(env)  # the same problems: no message
    assert sorted(second.suppressed) == sorted(first.sent) and not second.sent
    assert len(posts) == 1 and len(inbox.mails) == 1

    run = aggregat.daily(env, DAY)  # a failed run opens job:daily: one digest, all listed
    assert run.alerts.sent == ["job:daily"] and len(posts) == 2
    assert "job daily" in posts[1]["message"] and "weather arome-0025" in posts[1]["message"]


def test_health_problems_open_once_and_clear_once(world, webhook):
    from datetime import UTC, datetime

    from aggregat.ops.alerts import after_health

    posts, hook_port = webhook
    env = world(alerts_section(None, hook_port))
    now = datetime(2026, 11, 28, 6, tzinfo=UTC)

    def report(weather: str, run: str) -> HealthReport:
        r = HealthReport("test", now)
        r.add("data", "weather arome-0025", weather, "run 2026-11-26T00Z", "50 h old")
        r.add("runs", "last daily run", run, "2026-11-28 05:30Z", "1 failed, 4 ok",
              {"statuses": {"failed": 1, "ok": 4} if run == FAILED else {"ok": 5}})
        r.add("steps", "fetch", run, "failed", "arome-0025/2026-11-28T00Z: refused")
        return r

    bad = after_health(env, report(FAILED, FAILED))
    assert sorted(bad.sent) == ["job:daily", "late:weather arome-0025"]  # steps: no alert
    assert len(posts) == 2
    assert "#late-weather" in posts[1]["message"] or "#late-weather" in posts[0]["message"]
    assert not after_health(env, report(FAILED, FAILED)).sent and len(posts) == 2
    good = after_health(env, report(OK, OK))
    assert sorted(good.resolved) == ["job:daily", "late:weather arome-0025"]
    assert len(posts) == 4 and all("resolved" in p["title"] for p in posts[2:])


def test_two_evaluations_at_once_alert_a_problem_once(world, webhook):
    """A job's hook and the scheduler's check at the same instant: each problem goes out once
    (the second evaluation waits for the first's state instead of seeing it new too)."""
    import time
    from datetime import UTC, datetime

    from aggregat.ops.alerts import evaluate, health_problems, read_state

    _, hook_port = webhook
    env = world(alerts_section(None, hook_port))
    now = datetime(2026, 11, 28, 6, tzinfo=UTC)
    r = HealthReport("test", now)
    r.add("data", "weather arome-0025", FAILED, "run 2026-11-26T00Z", "50 h old")
    problems, _ = health_problems(r)
    sent: list[str] = []

    def slow_send(url, title, body, kind, timeout_s):  # a channel taking its time
        time.sleep(0.3)
        sent.append(title)

    reports = []
    threads = [threading.Thread(target=lambda: reports.append(
        evaluate(env, problems, lambda k: True, now, send=slow_send))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sent) == 1, sent
    assert sorted(len(x.sent) for x in reports) == [0, 1]
    assert sorted(len(x.suppressed) for x in reports) == [0, 1]
    assert list(read_state(env)["open"]) == ["late:weather arome-0025"]


@pytest.mark.slow
def test_a_failing_channel_never_fails_the_job_and_shows_in_health(world, webhook):
    posts, hook_port = webhook
    env = world(alerts_section(None, hook_port, extra_channels=("json://127.0.0.1:1/refused",)))

    run = aggregat.daily(env, DAY)  # returns its report: the alerting problem is not raised
    assert not run.ok and run.exit_code == 3
    assert run.alerts.failed_channels == ["#1 json://127.0.0.1"]
    assert run.alerts.sent == ["job:daily"] and len(posts) == 1  # the other channel got it

    health = aggregat.health(env)
    channels = {i.name: i for i in health.items if i.section == "alerts"}
    assert channels["alert channel #1 json://127.0.0.1"].status == "warning"
    assert channels["alert channel #1 json://127.0.0.1"].data["failed"] == 1
    assert channels["alert channel #2 json://127.0.0.1"].status == "ok"


def test_alerts_test_command_uses_the_password_and_never_prints_it(world, smtp, tmp_path):
    inbox, smtp_port = smtp
    env = world(alerts_section(smtp_port, None))
    done = subprocess.run(
        [sys.executable, "-m", "aggregat.cli.main", "alerts", "test", "--env", "test"],
        env=child_env(AGGREGAT_CONFIG=env.source_file), cwd=tmp_path, capture_output=True,
        text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "1 message(s) on 1 channel(s)" in done.stdout
    assert inbox.logins == [("ops", PASSWORD)] and len(inbox.mails) == 1
    assert "test alert" in inbox.texts()[0]
    assert_no_password(done.stdout + done.stderr, "the command's output")
    assert_no_password(inbox.texts()[0], "the message")
    assert_no_password(_files_text(tmp_path / "data"), "the stored state")


def test_alerts_test_names_a_channel_that_fails(world, webhook, tmp_path):
    posts, hook_port = webhook
    env = world(alerts_section(None, hook_port, extra_channels=("json://127.0.0.1:1/x",)))
    report = aggregat.alert(env)
    assert report.failed_channels == ["#1 json://127.0.0.1"] and report.exit_code == 1
    assert report.messages == 1 and len(posts) == 1 and report.sent == ["test"]


def test_a_problem_no_channel_took_is_sent_again_next_cycle(world, webhook):
    from datetime import UTC, datetime

    from aggregat.ops.alerts import after_health

    posts, hook_port = webhook
    env = world(alerts_section(None, None, extra_channels=("json://127.0.0.1:1/x",)))
    late = HealthReport("test", datetime(2026, 11, 28, 6, tzinfo=UTC))
    late.add("data", "load portfolio", FAILED, "2026-11-20 00:00Z", "8.2 d old")
    first = after_health(env, late)
    assert first.unsent == ["late:load portfolio"] and not first.sent and first.exit_code == 1
    working = env.model_copy(update={"alerts": env.alerts.model_copy(update={  # fixed channel
        "channels": [f"json://127.0.0.1:{hook_port}/aggregat"]})})
    second = after_health(working, late)
    assert second.sent == ["late:load portfolio"] and len(posts) == 1
    assert "(first seen)" in posts[0]["message"] and "2026-11-28 06:00 UTC" in posts[0]["message"]


def test_alert_settings_bad_input_is_one_line(tmp_path, monkeypatch):
    from aggregat.config import load_environment

    monkeypatch.chdir(tmp_path)
    config = tmp_path / "aggregat.toml"
    config.write_text('[env.x.alerts]\nchannels = ["mailtos://ops:hunter2@smtp.example.com"]\n')
    with pytest.raises(ConfigError, match=r"literal password; write \$\{NAME\}"):
        load_environment("x", config)
    config.write_text('[env.x.alerts]\nchannels = ["ops@example.com"]\n')
    with pytest.raises(ConfigError, match=r"\[env.x.alerts\] channels: 'ops@example.com' is "
                       "not a channel URL"):
        load_environment("x", config)
    # An @ in the query (the recipient) is no password; a relay without login works too.
    monkeypatch.setenv("AGGREGAT_X_SMTP_PASSWORD", PASSWORD)
    config.write_text('[env.x.alerts]\nchannels = ["mailtos://ops:${SMTP_PASSWORD}@smtp.example'
                      '.com:587?to=ops@example.com", "mailto://relay.example.com?to=a@b.example"]\n')
    channels = load_environment("x", config).alerts.channels
    assert channels[0] == (f"mailtos://ops:{quote(PASSWORD, safe='')}@smtp.example.com:587"
                           "?to=ops@example.com")
    config.write_text("[env.x]\n")
    with pytest.raises(ConfigError, match="no alert channel"):
        aggregat.alert(load_environment("x", config))
