"""The dashboard's HTTP contract, without a browser: the JSON of each page, /metrics, parameter
validation, escaping, masking, and the guarded actions (token AND CSRF, run lock, status)."""

from __future__ import annotations

import time

import httpx
import pytest
from dash_world import EVIL, PAGES, TOKEN, ZONE_KEY
from prometheus_client.parser import text_string_to_metric_families

import aggregat

JSON = ["/api/overview", "/api/runs", "/api/calendar", "/api/models",
        "/api/forecasts/portfolio", "/api/forecasts/portfolio/series?width=200"]


@pytest.fixture(scope="module")
def client(live):
    with httpx.Client(base_url=live.url, timeout=60) as c:
        yield c


def test_every_page_and_its_json(client):
    for path in PAGES + JSON:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        assert "default-src 'self'" in r.headers["content-security-policy"]
    overview = client.get("/api/overview").json()
    assert {r["job"] for r in overview["last_runs"]} >= {"backfill", "weekly", "daily"}
    assert [m["target"] for m in overview["live_models"]] == ["portfolio"]
    assert {n["job"] for n in overview["next_runs"]} >= {"daily", "weekly"}
    runs = client.get("/api/runs", params={"job": "daily", "status": "ok"}).json()
    assert runs["runs"] and {r["job"] for r in runs["runs"]} == {"daily"}
    cal = client.get("/api/calendar", params={"days": 5}).json()
    assert len(cal["days"]) == 5
    statuses = {c["status"] for row in cal["rows"] for c in row["cells"]}
    assert "present" in statuses and statuses <= {"present", "partial", "failed", "missing"}
    series = client.get("/api/forecasts/portfolio/series", params={"width": 50}).json()
    assert series["points"] > 100 and len(series["x"]) <= 100 and not series["raw"]
    assert series["x"] == sorted(series["x"])


def test_metrics_are_prometheus_text_from_a_registry_of_the_app(client):
    text = client.get("/metrics").text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    jobs = {s.labels["job"]: s.value for s in families["aggregat_job_last_run_status"].samples}
    assert jobs.get("daily") == 0 and jobs.get("weekly") == 0
    assert "aggregat_job_last_run_duration_seconds" in families
    assert any(s.labels["target"] == "portfolio"
               for s in families["aggregat_model_age_days"].samples)
    assert any(s.labels["series"] == "load portfolio"
               for s in families["aggregat_data_age_hours"].samples)
    assert "aggregat_forecast_mae_mw" in families
    assert "python_gc_objects_collected" not in text  # not the process-global registry


@pytest.mark.parametrize(("path", "status", "names"), [
    ("/runs?status=exploded", 400, "status"),
    ("/runs?date=2026-13-45", 400, "date"),
    ("/calendar?days=0", 400, "days"),
    ("/forecasts/portfolio?horizon=weekly", 400, "horizon"),
    ("/forecasts/portfolio?issue=yesterday", 400, "issue"),
    ("/api/forecasts/portfolio/series?width=3", 400, "width"),
    ("/forecasts/no-such-target", 404, "no-such-target"),
    ("/api/forecasts/no-such-target", 404, "no-such-target"),
])
def test_bad_parameters_are_one_line_naming_them(client, path, status, names):
    r = client.get(path)
    assert r.status_code == status
    if path.startswith("/api/"):
        assert names in r.json()["error"]
    else:
        assert names in r.text and "Traceback" not in r.text


def test_html_is_escaped_and_secrets_never_leave(client):
    seen = ""
    for path in [*PAGES, *JSON, "/metrics", "/forecasts/zone-***", "/runs?status=bad"]:
        seen += client.get(path).text
    seen += client.post("/login", data={"token": "wrong"}).text
    assert ZONE_KEY not in seen and TOKEN not in seen
    assert "zone-***" in client.get("/").text  # the masked id, where health names it
    runs = client.get("/runs", params={"job": "import"}).text
    assert EVIL not in runs and "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;" in runs


def _wait(client, action_id, headers=None):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = client.get(f"/api/actions/{action_id}", headers=headers).json()
        if status["state"] not in ("queued", "running"):
            return status
        time.sleep(0.2)
    raise AssertionError("the action did not end")


def test_actions_need_the_token_and_the_csrf_token(client, web_env):
    body = {"target": "portfolio"}
    assert client.post("/api/actions/train", json=body).status_code == 401
    bad = client.post("/api/actions/train", json=body, headers={"X-Aggregat-Token": "nope"})
    assert bad.status_code == 401
    no_csrf = client.post("/api/actions/train", json=body, headers={"X-Aggregat-Token": TOKEN})
    assert no_csrf.status_code == 403 and "CSRF" in no_csrf.json()["error"]
    csrf = client.get("/api/csrf", headers={"X-Aggregat-Token": TOKEN}).json()["csrf"]
    assert TOKEN not in csrf
    headers = {"X-Aggregat-Token": TOKEN, "X-CSRF-Token": csrf}
    wrong_target = client.post("/api/actions/train", json={"target": "nope"}, headers=headers)
    assert wrong_target.status_code == 404
    before = len(aggregat.models(web_env, "portfolio"))
    started = client.post("/api/actions/train", json=body, headers=headers)
    assert started.status_code == 202, started.text
    done = _wait(client, started.json()["id"])
    assert done["state"] == "done", done
    assert len(aggregat.models(web_env, "portfolio")) == before + 1


def test_an_action_waits_for_the_run_lock(client, web_env):
    csrf = client.get("/api/csrf", headers={"X-Aggregat-Token": TOKEN}).json()["csrf"]
    headers = {"X-Aggregat-Token": TOKEN, "X-CSRF-Token": csrf}
    with aggregat.run_lock(web_env, "a test holding the lock"):
        started = client.post("/api/actions/backfill", headers=headers,
                              json={"since": "2026-01-01", "until": "2026-01-02"})
        done = _wait(client, started.json()["id"])
    assert done["state"] == "failed" and "lock" in done["message"].lower(), done


def test_actions_are_off_without_the_setting(demo_home, secrets_set):
    from dash_world import LiveServer

    env = aggregat.open_env("web", demo_home / "no-actions.toml")
    with LiveServer(aggregat.dashboard_app(env)) as server, httpx.Client(
            base_url=server.url) as c:
        r = c.post("/api/actions/train", json={"target": "portfolio"},
                   headers={"X-Aggregat-Token": TOKEN})
        assert r.status_code == 403 and "actions = true" in r.json()["error"]
        assert c.post("/login", data={"token": TOKEN}).status_code == 403


def test_republish_and_backfill_actions_run_through_the_api(client, web_env):
    csrf = client.get("/api/csrf", headers={"X-Aggregat-Token": TOKEN}).json()["csrf"]
    headers = {"X-Aggregat-Token": TOKEN, "X-CSRF-Token": csrf}
    issue = aggregat.forecasts(web_env, "portfolio")["issue_time"].max()
    started = client.post("/api/actions/publish", headers=headers,
                          json={"issue_time": issue.isoformat()})
    assert started.status_code == 202, started.text
    done = _wait(client, started.json()["id"])
    assert done["state"] == "done" and "published issue" in done["message"], done
    day = issue.tz_convert("UTC").strftime("%Y-%m-%d")
    started = client.post("/api/actions/backfill", headers=headers,
                          json={"since": day, "until": day})
    done = _wait(client, started.json()["id"])
    assert done["state"] == "done", done
