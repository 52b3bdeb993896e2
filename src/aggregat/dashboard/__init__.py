"""``aggregat serve``: a web dashboard over the public API (health, runs, calendar, forecasts,
models, Prometheus metrics, guarded actions); see docs/dashboard.md. It reads and acts only
through ``import aggregat``, as a notebook would."""
