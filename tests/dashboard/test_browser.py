"""The dashboard in a real headless Chromium: pages render without console errors, charts are
drawn, navigation, selectors and zoom work, actions need a login and its CSRF token, and hostile
content stays text. Screenshots of each page go to tests/dashboard/artifacts/."""

from __future__ import annotations

import re

from dash_world import EVIL, PAGES, TOKEN, ZONE_KEY, shot

# True when the canvas has at least one painted pixel.
PAINTED = """(sel) => { const c = document.querySelector(sel + ' canvas');
  if (!c || !c.width) return false;
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  for (let i = 3; i < d.length; i += 4) if (d[i] !== 0) return true; return false; }"""


def test_every_page_renders_without_console_errors(page, live):
    for path in PAGES:
        page.goto(live.url + path)
        page.wait_for_load_state("networkidle")
        assert page.locator("h1").first.is_visible()
        shot(page, "page" + (path.replace("/", "_") if path != "/" else "_overview"))
        content = page.content()
        assert ZONE_KEY not in content and TOKEN not in content, path
    assert page.problems == [], page.problems


def test_charts_are_drawn_and_zoom_asks_the_server(page, live):
    page.goto(live.url + "/forecasts/portfolio")
    page.wait_for_selector("#chart[data-ready='1']")
    page.wait_for_selector("#error-chart[data-ready='1']")
    assert page.evaluate(PAINTED, "#chart") and page.evaluate(PAINTED, "#error-chart")
    assert "points in view" in page.locator("#chart-info").inner_text()
    over = page.locator("#chart .u-over").bounding_box()
    y = over["y"] + over["height"] / 2
    with page.expect_response(lambda r: "/series?" in r.url and "start=" in r.url) as zoom:
        page.mouse.move(over["x"] + over["width"] * 0.4, y)
        page.mouse.down()
        page.mouse.move(over["x"] + over["width"] * 0.6, y, steps=5)
        page.mouse.up()
    assert zoom.value.ok
    shot(page, "forecasts_zoomed")
    assert page.problems == [], page.problems


def test_navigation_and_selectors(page, live):
    page.goto(live.url + "/")
    for label, path in (("Runs", "/runs"), ("Calendar", "/calendar"), ("Models", "/models"),
                        ("Forecasts", "/forecasts/portfolio"), ("Overview", "/")):
        page.get_by_role("link", name=label, exact=True).click()
        page.wait_for_load_state("networkidle")
        assert page.url.split("?")[0] == live.url + path
    page.goto(live.url + "/forecasts/portfolio")
    page.select_option("#horizon-select", "intraday")
    page.wait_for_url(re.compile(r"horizon=intraday"))
    page.select_option("#horizon-select", "day-ahead")
    page.wait_for_url(re.compile(r"horizon=day-ahead"))
    issue = page.locator("#issue-select option").nth(1).get_attribute("value")
    page.select_option("#issue-select", issue)
    page.wait_for_url(re.compile(r"issue="))
    page.wait_for_selector("#chart[data-ready='1']")
    assert page.evaluate(PAINTED, "#chart")
    shot(page, "forecasts_one_issue")
    page.goto(live.url + "/runs")
    page.select_option("select[name=job]", "daily")
    page.select_option("select[name=status]", "ok")
    page.get_by_role("button", name="filter").click()
    page.wait_for_url(re.compile(r"job=daily"))
    headings = page.locator("article.run h2").all_inner_texts()
    assert headings and all("daily" in h for h in headings)
    page.goto(live.url + "/calendar")
    page.locator("td.cell.s-present a").first.click()
    page.wait_for_url(re.compile(r"/runs\?"))
    assert page.problems == [], page.problems


def test_hostile_text_is_text(page, live):
    for path in ("/", "/calendar", "/runs", "/runs?job=import"):
        page.goto(live.url + path)
    assert page.get_by_text(EVIL, exact=False).count() >= 1  # shown as text on the last
    assert page.dialogs == []  # no injected script ran


def test_an_action_needs_a_login_and_csrf(page, live):
    page.goto(live.url + "/models")
    assert page.get_by_role("button", name="retrain").is_disabled()
    # A forged POST from the page without a session: refused.
    status = page.evaluate("""async () => (await fetch('/api/actions/train', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({target: 'portfolio'})})).status""")
    assert status == 401
    page.fill("input[name=token]", "wrong")
    page.get_by_role("button", name="log in").click()
    assert "wrong token" in page.content()
    page.goto(live.url + "/models")
    page.fill("input[name=token]", TOKEN)
    page.get_by_role("button", name="log in").click()
    page.wait_for_url(live.url + "/models")
    cookie = next(c for c in page.context.cookies() if c["name"] == "aggregat_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and TOKEN not in cookie["value"]
    # Logged in but without the CSRF token (what a forged form would send): refused.
    status = page.evaluate("""async () => (await fetch('/api/actions/train', {method: 'POST',
        headers: {'Content-Type': 'application/json'},
        body: JSON.stringify({target: 'portfolio'})})).status""")
    assert status == 403
    page.problems.clear()  # the refusals above were expected
    page.get_by_role("button", name="retrain").click()
    page.wait_for_selector("#action-status[data-state='done'], #action-status[data-state='failed']",
                           timeout=120_000)
    message = page.locator("#action-message").inner_text()
    assert page.locator("#action-status").get_attribute("data-state") == "done", message
    assert "train #" in message
    shot(page, "models_after_retrain")
    assert TOKEN not in page.content()
    assert page.problems == [], page.problems
