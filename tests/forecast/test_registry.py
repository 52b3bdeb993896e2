"""Model registry: versions, CURRENT pointer, hash check, survival across processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pandas as pd
import pytest

from aggregat.errors import ModelError
from aggregat.forecast.registry import Registry
from child_process import child_env


def _model(tag: str) -> dict:
    # Any picklable object is a model for the registry; plain data keeps these tests fast.
    return {"kind": "test", "tag": tag, "weights": [1.0, 2.0, 3.0]}


@pytest.fixture
def reg(tmp_path) -> Registry:
    return Registry(str(tmp_path / "registry"))


def test_save_load_list_promote(reg):
    t1 = pd.Timestamp("2026-11-01T03:00Z")
    t2 = pd.Timestamp("2026-11-08T03:00Z")
    v1 = reg.save("paris", _model("a"), {"metrics": {"validation": {"mae": 3.0}}}, trained_at=t1)
    v2 = reg.save("paris", _model("b"), {"metrics": {"validation": {"mae": 2.0}}}, trained_at=t2)
    assert v1.startswith("20261101T030000Z-") and v2.startswith("20261108T030000Z-")
    assert reg.versions("paris") == [v1, v2]
    assert reg.current("paris") is None  # saving never promotes
    with pytest.raises(ModelError, match="no current model"):
        reg.load("paris")
    reg.promote("paris", v1)
    assert reg.current("paris") == v1
    model, meta = reg.load("paris")
    assert model["tag"] == "a" and meta["version"] == v1 and meta["target"] == "paris"
    assert meta["trained_at"] == t1.isoformat() and len(meta["sha256"]) == 64
    assert "code_version" in meta
    assert reg.load("paris", v2).model["tag"] == "b"
    rows = reg.list()
    assert [(r["version"], r["current"]) for r in rows] == [(v1, True), (v2, False)]
    assert rows[1]["metrics"]["validation"]["mae"] == 2.0
    reg.promote("paris", v2)
    assert reg.load("paris").model["tag"] == "b"
    assert reg.age("paris", now=t2 + pd.Timedelta(days=2)) == pd.Timedelta(days=2)
    assert reg.age("lyon") is None
    # No temporary file is left behind by the atomic writes.
    leftovers = [f for _, _, fs in os.walk(reg.store.root) for f in fs if f.startswith(".tmp-")]
    assert leftovers == []


def test_targets_are_separate_and_list_filters(reg):
    va = reg.save("a", _model("a"))
    vb = reg.save("b", _model("b"))
    reg.promote("b", vb)
    assert reg.targets() == ["a", "b"]
    assert [r["version"] for r in reg.list("a")] == [va]
    assert reg.current("a") is None and reg.current("b") == vb


def test_promote_unknown_version_names_it(reg):
    reg.save("paris", _model("a"))
    with pytest.raises(ModelError, match="no version 'nope' of target 'paris'"):
        reg.promote("paris", "nope")


def test_corrupt_model_file_is_refused_with_its_name(reg):
    v = reg.save("paris", _model("a"))
    reg.promote("paris", v)
    path = reg.store.local_path(f"paris/{v}/model.pkl")
    blob = bytearray(path.read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(ModelError, match=rf"paris/{v}/model.pkl is corrupt"):
        reg.load("paris")


def test_missing_model_file_and_dangling_pointer(reg):
    v = reg.save("paris", _model("a"))
    reg.promote("paris", v)
    reg.store.remove(f"paris/{v}/model.pkl")
    with pytest.raises(ModelError, match="model.pkl is missing"):
        reg.load("paris")
    reg.store.remove(f"paris/{v}", recursive=True)
    with pytest.raises(ModelError, match=f"names version '{v}' which is missing"):
        reg.current("paris")


def test_incomplete_version_is_ignored(reg):
    v = reg.save("paris", _model("a"))
    # A writer killed between model.pkl and meta.json leaves a folder without meta.json.
    reg.store.write_bytes("paris/20990101T000000Z-deadbeef/model.pkl", b"partial")
    assert reg.versions("paris") == [v]


@pytest.mark.parametrize("name", ["../etc", "a/b", "", ".hidden"])
def test_unsafe_target_names_are_refused(reg, name):
    with pytest.raises(ModelError, match="not a safe name"):
        reg.save(name, _model("a"))


def test_meta_is_json_with_timestamps(reg):
    meta = {"data_start": pd.Timestamp("2026-01-01T00:00Z"), "resolution": pd.Timedelta("1h")}
    v = reg.save("paris", _model("a"), meta)
    raw = json.loads(reg.store.read_bytes(f"paris/{v}/meta.json"))
    assert raw["data_start"] == "2026-01-01T00:00:00+00:00"
    assert raw["resolution"] == "0 days 01:00:00"


def test_model_survives_a_fresh_interpreter(reg, tmp_path):
    """A model saved before a reinstall is still there: a new process, a new Registry object."""
    v = reg.save("paris", _model("before-reinstall"))
    reg.promote("paris", v)
    code = textwrap.dedent(f"""
        from aggregat.forecast.registry import Registry
        model, meta = Registry({reg.url!r}).load("paris")
        print(meta["version"], model["tag"])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=120, cwd=tmp_path, env=child_env())
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == [v, "before-reinstall"]


def test_registry_on_object_storage_url():
    """Any fsspec URL works (memory:// stands in for s3:// here)."""
    reg = Registry("memory://aggregat-test-registry/prod")
    v = reg.save("paris", _model("remote"))
    reg.promote("paris", v)
    again = Registry("memory://aggregat-test-registry/prod")
    assert again.current("paris") == v and again.load("paris").model["tag"] == "remote"
    assert [r["version"] for r in again.list()] == [v]


def test_models_pickled_before_the_core_moved_still_load():
    """Registries outlive code versions: a pickle naming aggregat.forecast.features (before the
    storage-free core moved to aggregat.forecast.core) still loads."""
    import io
    import pickle

    from aggregat.forecast.core.features import FeatureConfig
    from aggregat.forecast.registry import _Unpickler

    blob = pickle.dumps(FeatureConfig(), protocol=0).replace(
        b"aggregat.forecast.core.features", b"aggregat.forecast.features")
    assert b"aggregat.forecast.core" not in blob
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(blob)
    assert _Unpickler(io.BytesIO(blob)).load() == FeatureConfig()
