// aggregat dashboard: actions (token + CSRF, polled status) and small page helpers. No framework.
"use strict";
(function () {
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const box = document.getElementById("action-status");
  const message = document.getElementById("action-message");

  function show(text, state) {
    box.hidden = false;
    box.dataset.state = state || "";
    message.textContent = text;  // text, never HTML
  }

  async function poll(id) {
    const response = await fetch("/api/actions/" + id, {credentials: "same-origin"});
    const status = await response.json();
    show(status.kind + " #" + status.id + ": " + status.state +
         (status.message ? " — " + status.message : ""), status.state);
    if (status.state === "queued" || status.state === "running") {
      setTimeout(() => poll(id), 1000);
    }
  }

  async function submit(kind, body) {
    show(kind + ": sending…", "queued");
    const response = await fetch("/api/actions/" + kind, {
      method: "POST", credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body),
    });
    const result = await response.json();
    if (!response.ok) {
      show(kind + " refused: " + (result.error || response.status), "failed");
      return;
    }
    poll(result.id);
  }

  document.querySelectorAll("form[data-action]").forEach((form) => {
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      const kind = form.dataset.action;
      if (kind === "backfill") {
        submit(kind, {since: form.elements.since.value, until: form.elements.until.value});
      } else if (kind === "train") {
        submit(kind, {target: form.dataset.target});
      } else if (kind === "publish") {
        submit(kind, {issue_time: form.dataset.issue});
      }
    });
  });

  // Calendar: clicking day headers picks the backfill's first then last day.
  const backfill = document.getElementById("backfill-form");
  let picks = [];
  document.querySelectorAll("th.day[data-day]").forEach((th) => {
    th.addEventListener("click", () => {
      picks = picks.length >= 2 ? [] : picks;
      picks.push(th.dataset.day);
      const sorted = picks.slice().sort();
      document.querySelectorAll("th.day").forEach((h) => h.classList.toggle(
        "picked", h.dataset.day >= sorted[0] && h.dataset.day <= sorted[sorted.length - 1]));
      if (backfill) {
        backfill.elements.since.value = sorted[0];
        backfill.elements.until.value = sorted[sorted.length - 1];
      }
    });
  });

  // Forecasts: changing the target goes to its page; horizon or issue reload this one.
  const target = document.getElementById("target-select");
  if (target) {
    target.addEventListener("change", () => {
      const horizon = document.getElementById("horizon-select").value;
      location.href = "/forecasts/" + encodeURIComponent(target.value) +
        "?horizon=" + encodeURIComponent(horizon);
    });
    target.form.addEventListener("submit", () => target.removeAttribute("name"));
    ["horizon-select", "issue-select"].forEach((id) => {
      const select = document.getElementById(id);
      select.addEventListener("change", () => {
        if (id === "horizon-select") document.getElementById("issue-select").value = "all";
        target.removeAttribute("name");
        select.form.submit();
      });
    });
  }
})();

// Filter forms: leave empty fields out of the query ("all"), as the server reads no value.
document.querySelectorAll("form.filters[method=get]").forEach((form) => {
  form.addEventListener("submit", () => {
    Array.from(form.elements).forEach((el) => { if (el.name && el.value === "") el.disabled = true; });
  });
});
