"""Fuzz the configuration loader (Hypothesis): any aggregat.toml gives an Environment or one
ConfigError line, never another exception or a hang. Trees keep the real keys (sections,
settings, targets) with values of any TOML type, so the fuzz reaches the settings models; plus
random text and bytes."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from aggregat.config import Environment, load_environment
from aggregat.errors import AggregatError
from aggregat.plausibility import Plausibility

FUZZ = settings(max_examples=120, deadline=2000, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else \
            repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)  # JSON string escapes are TOML basic-string escapes
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(x)}" for k, x in v.items()) + "}"


def to_toml(tree: dict) -> str:
    """Top-level scalars, then each table inline (TOML 1.0 allows any tree that way)."""
    return "\n".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in tree.items()) + "\n"


scalars = st.one_of(st.text(max_size=12), st.integers(-10**20, 10**20), st.floats(), st.booleans(),
                    st.sampled_from(["", "local", "dev", "arome-0025", "${X}", "s3://b",
                                     "sqlite:///x.db", "postgresql://u:pw@h/db", "05:30", "sun",
                                     "Europe/Paris", "FR", "nearest", "."]))
values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=6)


def section(keys: list[str]):
    return st.dictionaries(st.sampled_from(keys), values, max_size=4)


target = st.dictionaries(st.sampled_from(["id", "sites", "weights", "weather_models",
                                          "weather_cols", "min_mw", "max_mw", "net_load"]),
                         values, max_size=5) | st.fixed_dictionaries(
    {"id": st.text(min_size=1, max_size=4)},
    optional={"min_mw": st.floats() | st.integers(), "max_mw": st.floats() | st.integers(),
              "net_load": st.booleans() | scalars})
env_section = st.fixed_dictionaries({}, optional={
    "root": values, "energy_db": values, "sites": values, "areas": values, "scheduler": values,
    "workers": values, "quarantine": values, "unknown_key": values,
    "weather": section(["base_url", "models", "packages", "runs", "method", "timeout_s"]),
    "energy": section(["load_table", "max_load_mw", "sync_batch_rows", "retries",
                       "publish_procedure"]),
    "forecast": section(["timezone", "holidays", "model_params", "intraday", "issue_hour_local"])
    | st.fixed_dictionaries({"targets": st.lists(target, max_size=3) | values}),
    "jobs": section(["daily_at", "weekly_on", "step_warn_s", "load_fail_h"]),
})
trees = st.fixed_dictionaries({}, optional={
    "default_env": values, "defaults": env_section | values,
    "env": st.dictionaries(st.sampled_from(["local", "dev", "prod"]), env_section | values,
                           max_size=2) | values,
})


def _load(tmp_path, text: str | bytes, name: str | None):
    path = tmp_path / "aggregat.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    try:
        env = load_environment(name, path)
        Plausibility.from_env(env)
    except AggregatError as exc:
        assert "\n" not in str(exc), str(exc)
        return None
    assert isinstance(env, Environment)
    return env


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch, tmp_path):
    monkeypatch.delenv("AGGREGAT_ENV", raising=False)
    monkeypatch.setenv("AGGREGAT_HOME", str(tmp_path / "home"))


@FUZZ
@given(tree=trees, name=st.sampled_from([None, "local", "dev", "prod"]))
@example(tree={"env": 5}, name=None)
@example(tree={"env": {"dev": 5}}, name="dev")
@example(tree={"defaults": [1]}, name=None)
@example(tree={"env": {"dev": {"root": 5}}}, name="dev")
@example(tree={"default_env": 5}, name=None)
@example(tree={"env": {"dev": {"forecast": {"targets": [{"id": "t", "min_mw": -1}]}}}}, name="dev")
@example(tree={"env": {"dev": {"forecast": {"targets": [
    {"id": "t", "weights": {"a\nb": "x"}}]}}}}, name="dev")
@example(tree={"env": {"dev": {"weather": {"packages": {"a\rb": 1}}}}}, name="dev")
def test_config_trees_give_an_environment_or_one_config_error(tmp_path, tree, name):
    _load(tmp_path, to_toml(tree), name)


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200))
@example(text=b"\xff\xfe")
@example(text='[env.local]\nroot = """a\nb"""\n')
def test_config_text_gives_an_environment_or_one_config_error(tmp_path, text):
    _load(tmp_path, text, None)
