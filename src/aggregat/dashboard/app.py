"""The FastAPI application of ``aggregat serve``: server-rendered pages, the same data as JSON
under ``/api``, ``/metrics`` for Prometheus, and the guarded actions.

Every text goes out masked (Jinja's ``finalize`` and the JSON responses run the config's
:func:`~aggregat.config.mask`), HTML is autoescaped, parameters are typed (a bad one is a 400
naming it, an unknown target a 404), and the Content-Security-Policy allows only this server's
own scripts and styles (uPlot is vendored in ``static/``).
"""

from __future__ import annotations

import contextlib
import json
import math
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs, quote

import jinja2
import pandas as pd
from fastapi import FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

import aggregat
from aggregat.config import Environment, mask, mask_json
from aggregat.dashboard import pages
from aggregat.dashboard.actions import SESSION_COOKIE, Actions
from aggregat.dashboard.metrics import metrics_registry, render
from aggregat.errors import AggregatError
from aggregat.timeutil import Horizon, fmt_time

HERE = Path(__file__).parent
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
NAV = (("/", "Overview"), ("/runs", "Runs"), ("/calendar", "Calendar"),
       ("/forecasts", "Forecasts"), ("/models", "Models"))
Status = Literal["running", "ok", "partial", "failed", "skipped"]
HorizonParam = Literal["day-ahead", "intraday"]


class JSONMasked(Response):
    """JSON with every string masked (a secret in an error or a detail never goes out)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return mask_json(_finite(content), default=str, allow_nan=False).encode()


def _finite(tree: Any) -> Any:
    """``tree`` with NaN and infinities as None: JSON has no NaN, browsers refuse it."""
    if isinstance(tree, dict):
        return {k: _finite(v) for k, v in tree.items()}
    if isinstance(tree, list | tuple):
        return [_finite(v) for v in tree]
    if isinstance(tree, float) and not math.isfinite(tree):
        return None
    return tree


class BackfillRequest(BaseModel):
    since: date
    until: date


class TrainRequest(BaseModel):
    target: str = Field(max_length=128)
    horizon: HorizonParam = "day-ahead"


def _masked(value: Any) -> Any:
    """Every value a template prints, masked (escaped markup such as ``tojson`` stays markup)."""
    if isinstance(value, Markup):
        return Markup(mask(str(value)))
    return mask(value) if isinstance(value, str) else value


def _templates() -> Jinja2Templates:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"), autoescape=True,
        finalize=_masked, undefined=jinja2.StrictUndefined)
    env.filters["urlq"] = lambda v: quote(str(v), safe="")
    return Jinja2Templates(env=env)


def create_app(env: Environment) -> FastAPI:
    cache = pages.SeriesCache(env)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        # The forecast pages' series are read while nobody waits: the first view is fast too.
        horizons = (Horizon.DAY_AHEAD, Horizon.INTRADAY) if env.forecast.intraday \
            else (Horizon.DAY_AHEAD,)
        cache.warm(aggregat.targets(env), horizons)
        yield

    app = FastAPI(title=f"aggregat {env.name}", docs_url=None, redoc_url=None,
                  openapi_url=None, default_response_class=JSONMasked, lifespan=lifespan)
    templates = _templates()
    actions = Actions(env)
    actions.on_done = cache.clear
    registry = metrics_registry(env)
    tz = env.forecast.timezone
    templates.env.filters["local"] = lambda v: "" if not v else fmt_time(pd.Timestamp(v), tz)
    templates.env.filters["short"] = lambda v: (
        "" if not v else f"{pd.Timestamp(v).tz_convert(tz):%Y-%m-%d %H:%M}")
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    @app.middleware("http")
    async def _headers(request: Request, call_next):
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = CSP
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        return response

    def page(request: Request, name: str, data: dict[str, Any], status: int = 200
             ) -> HTMLResponse:
        logged_in = actions.authenticated(request.headers, request.cookies)
        context = {"data": data, "env_name": env.name, "nav": NAV, "path": request.url.path,
                   "actions_enabled": actions.enabled, "why_disabled": actions.why_disabled,
                   "logged_in": logged_in,
                   "csrf": actions.csrf_token() if logged_in else "",
                   "recent_actions": [a.as_dict() for a in actions.recent(5)]}
        return templates.TemplateResponse(request, name, context, status_code=status)

    def known_target(target: str) -> str:
        if target not in aggregat.targets(env):
            raise HTTPException(404, f"unknown target {target!r}")
        return target

    def wants_json(request: Request) -> bool:
        return request.url.path.startswith("/api/") or request.url.path == "/metrics"

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError):
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err.get("loc", ()) if p not in ("query", "body", "path"))
        message = f"bad parameter {where}: {err.get('msg', 'invalid')}"
        if wants_json(request):
            return JSONMasked({"error": message}, status_code=400)
        return page(request, "error.html", {"status": 400, "message": message}, 400)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException):
        message = str(exc.detail) if exc.status_code != 404 or exc.detail != "Not Found" else (
            f"no page at {request.url.path}")
        if wants_json(request):
            return JSONMasked({"error": message}, status_code=exc.status_code)
        return page(request, "error.html", {"status": exc.status_code, "message": message},
                    exc.status_code)

    @app.exception_handler(AggregatError)
    async def _aggregat_error(request: Request, exc: AggregatError):
        status = 400 if exc.exit_code == 2 else 409 if exc.exit_code == 75 else 500
        if wants_json(request):
            return JSONMasked({"error": mask(str(exc))}, status_code=status)
        return page(request, "error.html", {"status": status, "message": str(exc)}, status)

    # -- pages and their JSON ----------------------------------------------------------------
    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request):
        return page(request, "overview.html", pages.overview(env))

    @app.get("/api/overview")
    def overview_json():
        return JSONMasked(pages.overview(env))

    def runs_data(job, step, status, day, partition, limit):
        return pages.runs(env, job=job, step=step, status=status, day=day, partition=partition,
                          limit=limit)

    RunFilters = dict(
        job=Query(None, max_length=32, pattern=r"^[a-z][a-z0-9-]*$"),
        step=Query(None, max_length=32, pattern=r"^[a-z][a-z0-9-]*$"),
        partition=Query(None, max_length=128, pattern=r"^[A-Za-z0-9_.:+@/-]+$"),
        limit=Query(50, ge=1, le=1000))

    @app.get("/runs", response_class=HTMLResponse)
    def runs_page(request: Request, job: str | None = RunFilters["job"],
                  step: str | None = RunFilters["step"], status: Status | None = None,
                  day: date | None = Query(None, alias="date"),
                  partition: str | None = RunFilters["partition"],
                  limit: int = RunFilters["limit"]):
        return page(request, "runs.html", runs_data(job, step, status, day, partition, limit))

    @app.get("/api/runs")
    def runs_json(job: str | None = RunFilters["job"], step: str | None = RunFilters["step"],
                  status: Status | None = None, day: date | None = Query(None, alias="date"),
                  partition: str | None = RunFilters["partition"],
                  limit: int = RunFilters["limit"]):
        return JSONMasked(runs_data(job, step, status, day, partition, limit))

    Days = Query(30, ge=1, le=400)

    @app.get("/calendar", response_class=HTMLResponse)
    def calendar_page(request: Request, days: int = Days, last: date | None = None):
        return page(request, "calendar.html", pages.calendar(env, days, last))

    @app.get("/api/calendar")
    def calendar_json(days: int = Days, last: date | None = None):
        return JSONMasked(pages.calendar(env, days, last))

    @app.get("/models", response_class=HTMLResponse)
    def models_page(request: Request):
        return page(request, "models.html", pages.models(env))

    @app.get("/api/models")
    def models_json():
        return JSONMasked(pages.models(env))

    @app.get("/forecasts", response_class=HTMLResponse)
    def forecasts_index(request: Request):
        targets = aggregat.targets(env)
        if not targets:
            return page(request, "error.html", {"status": 200, "message":
                        "no target yet: run `aggregat run daily` or `aggregat demo`"})
        return RedirectResponse(f"/forecasts/{quote(targets[0], safe='')}", status_code=303)

    def issue_of(issue: str | None) -> pd.Timestamp | None:
        if issue in (None, "", "all"):
            return None
        try:
            return aggregat_time(issue, "issue")
        except AggregatError as exc:
            raise RequestValidationError([{"loc": ("query", "issue"), "msg": str(exc)}]) from None

    @app.get("/forecasts/{target:path}", response_class=HTMLResponse)
    def forecast_page(request: Request, target: Annotated[str, PathParam(max_length=128)],
                      horizon: HorizonParam = "day-ahead",
                      issue: Annotated[str | None, Query(max_length=40)] = None):
        known_target(target)
        data = pages.forecast_page(env, cache, target, Horizon(horizon), issue_of(issue))
        data["targets"] = aggregat.targets(env)
        return page(request, "forecasts.html", data)

    @app.get("/api/forecasts/{target:path}/series")
    def forecast_series(target: Annotated[str, PathParam(max_length=128)],
                        horizon: HorizonParam = "day-ahead",
                        issue: Annotated[str | None, Query(max_length=40)] = None,
                        start: float | None = Query(None, ge=0, le=4e9),
                        end: float | None = Query(None, ge=0, le=4e9),
                        width: int = Query(1000, ge=10, le=5000)):
        known_target(target)
        t0 = None if start is None else pd.Timestamp(start, unit="s", tz="UTC")
        t1 = None if end is None else pd.Timestamp(end, unit="s", tz="UTC")
        return JSONMasked(pages.forecast_series(cache, target, Horizon(horizon),
                                                issue_of(issue), t0, t1, width))

    @app.get("/api/forecasts/{target:path}")
    def forecast_json(target: Annotated[str, PathParam(max_length=128)],
                      horizon: HorizonParam = "day-ahead",
                      issue: Annotated[str | None, Query(max_length=40)] = None):
        known_target(target)
        return JSONMasked(pages.forecast_page(env, cache, target, Horizon(horizon),
                                              issue_of(issue)))

    @app.get("/metrics")
    def metrics():
        return Response(render(registry), media_type="text/plain; version=0.0.4; charset=utf-8")

    # -- login and actions -------------------------------------------------------------------
    @app.post("/login")
    async def login(request: Request):
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        token = (form.get("token") or [""])[0]
        back = (form.get("next") or ["/"])[0]
        if not back.startswith("/") or back.startswith("//"):
            back = "/"
        if not actions.check_login(token):
            return page(request, "error.html", {"status": 403, "message":
                        "wrong token, or actions are off"}, 403)
        response = RedirectResponse(back, status_code=303)
        response.set_cookie(SESSION_COOKIE, actions.session_value(), httponly=True,
                            samesite="strict", secure=request.url.scheme == "https",
                            path="/")
        return response

    @app.post("/logout")
    def logout():
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    def guard(request: Request) -> None:
        if not actions.enabled:
            raise HTTPException(403, actions.why_disabled)
        if not actions.authenticated(request.headers, request.cookies):
            raise HTTPException(401, "log in with the dashboard token first")
        if not actions.csrf_ok(request.headers):
            raise HTTPException(403, "missing or wrong CSRF token (X-CSRF-Token)")

    @app.get("/api/csrf")
    def csrf(request: Request):
        if not actions.authenticated(request.headers, request.cookies):
            raise HTTPException(401, "log in with the dashboard token first")
        return JSONMasked({"csrf": actions.csrf_token()})

    @app.post("/api/actions/backfill", status_code=202)
    def backfill(request: Request, body: BackfillRequest):
        guard(request)
        if body.until < body.since or (body.until - body.since).days > 366:
            raise HTTPException(400, "until must be on or after since, at most a year later")
        return JSONMasked(actions.submit("backfill", {"since": body.since.isoformat(),
                                                      "until": body.until.isoformat()}).as_dict(),
                          status_code=202)

    @app.post("/api/actions/train", status_code=202)
    def train(request: Request, body: TrainRequest):
        guard(request)
        known_target(body.target)
        return JSONMasked(actions.submit("train", {"target": body.target,
                                                   "horizon": body.horizon}).as_dict(),
                          status_code=202)

    @app.post("/api/actions/publish", status_code=202)
    async def publish(request: Request):
        guard(request)
        try:
            raw = json.loads(await request.body() or b"{}")
            issue = aggregat_time(str(raw["issue_time"]), "issue_time")
        except (ValueError, KeyError, TypeError, AggregatError) as exc:
            raise HTTPException(400, f"issue_time: {exc}") from None
        return JSONMasked(actions.submit("publish", {"issue_time": issue.isoformat()}).as_dict(),
                          status_code=202)

    @app.get("/api/actions/{action_id}")
    def action_status(action_id: Annotated[int, PathParam(ge=1)]):
        found = actions.status(action_id)
        if found is None:
            raise HTTPException(404, f"no action {action_id}")
        return JSONMasked(found.as_dict())

    app.state.actions = actions
    app.state.cache = cache
    return app


def aggregat_time(text: str, param: str) -> pd.Timestamp:
    """An aware time from a query (ISO 8601 with an offset, or Z)."""
    from aggregat.timeutil import as_utc

    return as_utc(text, param=param)
