"""The dashboard on demo data, served by uvicorn on a free loopback port in a thread, and a real
headless Chromium (Debian's /usr/bin/chromium) driven by Playwright.

The environment ``web`` is the demo's (2 days of archive, 30 of history) plus what the pages
must survive: actions on with a token, a failed run whose error is HTML (``<script>``, as an
error quoting a file or a database can be), and a target whose id holds a secret
(``${ZONE_KEY}``); both secrets must never reach a page."""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest
from dash_world import CHROMIUM, CHROMIUM_ARGS, EVIL, TOKEN, ZONE_KEY, LiveServer

import aggregat
from aggregat.bank import Bank
from aggregat.ops.ledger import Ledger


@pytest.fixture(scope="session")
def demo_home(tmp_path_factory):
    """A demo world (run once per session) and the config of its dashboard environment."""
    home = tmp_path_factory.mktemp("dash")
    plain = home / "plain.toml"
    plain.write_text(f'[env.web]\nroot = "{home / "data"}"\n')
    report = aggregat.run_demo(aggregat.open_env("web", plain), days=2, history_days=30,
                               log=lambda _msg: None)
    models = list(report.env.weather.models)
    ledger = Ledger(Bank(report.env.bank), job="import")
    with contextlib.suppress(RuntimeError), ledger.step("import", "history"):
        raise RuntimeError(EVIL)
    for name, actions in (("aggregat.toml", True), ("no-actions.toml", False)):
        (home / name).write_text(
            f'[env.web]\nroot = "{home / "data"}"\n'
            f'[env.web.weather]\nmodels = [{", ".join(chr(34) + m + chr(34) for m in models)}]\n'
            f'[env.web.dashboard]\nactions = {str(actions).lower()}\n'
            '[[env.web.forecast.targets]]\nid = "portfolio"\n'
            '[[env.web.forecast.targets]]\nid = "zone-${ZONE_KEY}"\n')
    return home


@pytest.fixture(scope="session")
def secrets_set():
    saved = {k: os.environ.get(k) for k in ("AGGREGAT_WEB_DASHBOARD_TOKEN",
                                            "AGGREGAT_WEB_ZONE_KEY")}
    os.environ["AGGREGAT_WEB_DASHBOARD_TOKEN"] = TOKEN
    os.environ["AGGREGAT_WEB_ZONE_KEY"] = ZONE_KEY
    yield
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


@pytest.fixture(scope="session")
def web_env(demo_home, secrets_set):
    env = aggregat.open_env("web", demo_home / "aggregat.toml")
    return env.model_copy(update={"sites": str(demo_home / "data" / "sites.csv")})


@pytest.fixture(scope="session")
def live(web_env):
    with LiveServer(aggregat.dashboard_app(web_env)) as server:
        yield server


@pytest.fixture(scope="session")
def browser():
    if not (shutil.which(CHROMIUM) or Path(CHROMIUM).is_file()):
        pytest.skip(f"no Chromium at {CHROMIUM}: `apt-get install chromium` (Debian) to run "
                    "the browser tests")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser):
    """A fresh browser context; console errors and page errors are collected in
    ``page.problems`` and JS dialogs (an injected alert) in ``page.dialogs``."""
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    pg = context.new_page()
    pg.problems, pg.dialogs = [], []
    pg.on("console", lambda m: pg.problems.append(f"console {m.type}: {m.text}")
          if m.type == "error" else None)
    pg.on("pageerror", lambda e: pg.problems.append(f"pageerror: {e}"))
    pg.on("response", lambda r: pg.problems.append(f"HTTP {r.status} {r.url}")
          if r.status >= 400 and r.request.resource_type != "document" else None)
    pg.on("dialog", lambda d: (pg.dialogs.append(d.message), d.dismiss()))
    yield pg
    context.close()

