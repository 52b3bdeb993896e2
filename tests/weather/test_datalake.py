"""Datalake layout, manifest, quarantine and the GRIB framing checker."""

from __future__ import annotations

import hashlib
import io
import uuid
from datetime import UTC, datetime

import pytest
import xxhash
from archive_server import grib2_messages

from aggregat.errors import CorruptFileError, GribError
from aggregat.weather import datalake as datalake_mod
from aggregat.weather.datalake import (
    HASH,
    Datalake,
    check_grib_framing,
    file_digest,
    manifest_digest,
    message_offsets,
    verify_file,
)
from aggregat.weather.products import get_product

PRODUCT = get_product("arome-0025")
RUN = datetime(2026, 11, 28, 0, tzinfo=UTC)


def grib1_message() -> bytes:
    import eccodes as ec

    h = ec.codes_grib_new_from_samples("GRIB1")
    try:
        return ec.codes_get_message(h)
    finally:
        ec.codes_release(h)


# -- framing ---------------------------------------------------------------------------------
def test_framing_counts_grib2_and_grib1_messages(tmp_path):
    data = grib2_messages(3) + grib1_message() + grib2_messages(1, seed=5)
    assert check_grib_framing(data) == 5
    path = tmp_path / "x.grib2"
    path.write_bytes(data)
    assert check_grib_framing(path) == 5
    assert check_grib_framing(str(path)) == 5
    assert check_grib_framing(io.BytesIO(data)) == 5
    offsets = message_offsets(path)
    assert offsets[0] == 0 and len(offsets) == 5
    assert all(data[o:o + 4] == b"GRIB" for o in offsets)
    assert offsets[3] == len(grib2_messages(3))


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda d: d[:-1], "truncated"),  # last message cut short
        (lambda d: d[:-4] + b"7770", "7777"),  # end marker wrong
        (lambda d: b"XRIB" + d[4:], "does not start with GRIB"),
        (lambda d: d + b"\0\0\0\0", "trailing bytes"),
        (lambda d: b"", "empty"),
        (lambda d: d[:10], "truncated header"),
    ],
)
def test_framing_rejects_corrupt_data(mutate, expected):
    data = grib2_messages(2)
    with pytest.raises(GribError, match=expected):
        check_grib_framing(mutate(data), name="bad.grib2")


def test_framing_error_names_the_file_and_message(tmp_path):
    data = grib2_messages(3)
    path = tmp_path / "arome__0025__SP1__00H06H__x.grib2"
    one = len(grib2_messages(1))
    path.write_bytes(data[: 2 * one + 20])  # third message truncated
    with pytest.raises(GribError) as info:
        check_grib_framing(path)
    msg = str(info.value)
    assert path.name in msg and "message 3" in msg and "\n" not in msg


def test_framing_rejects_missing_file(tmp_path):
    with pytest.raises(GribError, match="not found"):
        check_grib_framing(tmp_path / "nope.grib2")


# -- layout and manifest ---------------------------------------------------------------------
def _put(lake: Datalake, package: str, group: tuple[int, int], data: bytes) -> str:
    rel = lake.file_rel(PRODUCT, RUN, package, group)
    lake.store.write_bytes(rel, data)
    manifest = lake.read_manifest(PRODUCT, RUN)
    manifest["files"][lake.manifest_key(PRODUCT, RUN, rel)] = {
        "size": len(data), "sha256": "x", "url": "u", "fetched_at": "t"}
    lake.write_manifest(PRODUCT, RUN, manifest)
    return rel


@pytest.fixture(params=["local", "memory"])
def lake(request, tmp_path):
    if request.param == "local":
        return Datalake(str(tmp_path / "lake"))
    return Datalake(f"memory://lake-{uuid.uuid4().hex}")


def test_layout(lake):
    assert lake.run_prefix(PRODUCT, RUN) == "arome-0025/2026-11-28T00Z"
    assert lake.file_rel("arome-0025", RUN, "sp1", (7, 12)) == (
        "arome-0025/2026-11-28T00Z/SP1/arome__0025__SP1__07H12H__2026-11-28T00:00:00Z.grib2")
    assert len(lake.expected_files(PRODUCT, RUN)) == 2 * len(PRODUCT.groups)


def test_manifest_roundtrip_and_run_files(lake):
    assert lake.read_manifest(PRODUCT, RUN)["files"] == {}
    assert lake.run_files(PRODUCT, RUN) == []
    a = _put(lake, "SP1", PRODUCT.groups[0], b"GRIB-a")
    b = _put(lake, "SP2", PRODUCT.groups[1], b"GRIB-bb")
    assert lake.run_files(PRODUCT, RUN) == [a, b]
    assert lake.run_files(PRODUCT, RUN, packages=["SP2"]) == [b]
    manifest = lake.read_manifest(PRODUCT, RUN)
    assert manifest["files"]["SP1/" + a.rsplit("/", 1)[-1]]["size"] == 6
    # A file whose size no longer matches its manifest entry is not verified.
    lake.store.write_bytes(a, b"GRIB-a-changed")
    assert lake.run_files(PRODUCT, RUN) == [b]
    # A file on disk but not in the manifest is not listed either.
    lake.store.write_bytes(lake.file_rel(PRODUCT, RUN, "SP1", PRODUCT.groups[2]), b"GRIB")
    assert lake.run_files(PRODUCT, RUN) == [b]
    assert lake.runs(PRODUCT) == [RUN]
    with lake.open(b) as fh:
        assert fh.read() == b"GRIB-bb"


def test_corrupt_manifest_means_nothing_verified(lake):
    _put(lake, "SP1", PRODUCT.groups[0], b"GRIB")
    lake.store.write_bytes(lake.manifest_rel(PRODUCT, RUN), b"{not json")
    assert lake.run_files(PRODUCT, RUN) == []


def test_quarantine_moves_file_and_records_reason(lake):
    rel = _put(lake, "SP1", PRODUCT.groups[0], b"GRIB-bad")
    moved = lake.quarantine(rel, "truncated at message 3")
    assert moved == lake.store.uri(f"quarantine/{rel}")  # no setting: inside the datalake
    assert not lake.exists(rel)
    assert lake.store.read_bytes(f"quarantine/{rel}") == b"GRIB-bad"
    assert b"truncated at message 3" in lake.store.read_bytes(f"quarantine/{rel}.reason")
    assert lake.run_files(PRODUCT, RUN) == []
    assert lake.runs(PRODUCT) == [RUN]  # the quarantine folder is not a run


@pytest.mark.parametrize("where", ["local", "memory"])
def test_quarantine_goes_to_the_setting(lake, tmp_path, where):
    target = (str(tmp_path / "elsewhere") if where == "local"
              else f"memory://quarantine-{uuid.uuid4().hex}")
    lake = Datalake(lake.url, quarantine=target)
    rel = _put(lake, "SP1", PRODUCT.groups[0], b"GRIB-bad")
    moved = lake.quarantine(rel, "sha256 does not match")
    assert moved == lake.quarantine_store.uri(rel) and moved.startswith(target)
    assert not lake.exists(rel) and not lake.exists(f"quarantine/{rel}")
    assert lake.quarantine_store.read_bytes(rel) == b"GRIB-bad"
    assert b"sha256" in lake.quarantine_store.read_bytes(f"{rel}.reason")


# -- integrity hash --------------------------------------------------------------------------
def test_file_digest_is_xxh3_on_paths_files_and_bytes_across_blocks(tmp_path, monkeypatch):
    monkeypatch.setattr(datalake_mod, "_BLOCK", 1000)  # many blocks, a short last one
    data = bytes(range(256)) * 37
    path = tmp_path / "f.grib2"
    path.write_bytes(data)
    want = xxhash.xxh3_128(data).hexdigest()
    assert HASH == "xxh3_128"
    assert file_digest(path) == file_digest(str(path)) == file_digest(data) == want
    assert file_digest(io.BytesIO(data)) == want
    assert file_digest(path, "sha256") == hashlib.sha256(data).hexdigest()


def test_datalake_digest_on_any_store(lake):
    rel = _put(lake, "SP1", PRODUCT.groups[0], b"GRIB-abc")
    assert lake.digest(rel) == xxhash.xxh3_128(b"GRIB-abc").hexdigest()
    assert lake.digest(rel, "sha256") == hashlib.sha256(b"GRIB-abc").hexdigest()


@pytest.mark.parametrize("entry, expected", [
    ({"hash": "xxh3_128:ab12"}, ("xxh3_128", "ab12")),
    ({"sha256": "cd34"}, ("sha256", "cd34")),  # manifests written before xxh3
    ({"size": 3}, None),
])
def test_manifest_digest_reads_new_and_legacy_entries(entry, expected):
    assert manifest_digest(entry) == expected


@pytest.mark.parametrize("algorithm", ["xxh3_128", "sha256"])
def test_verify_file_catches_a_flipped_byte_with_either_algorithm(tmp_path, algorithm):
    data = b"GRIB" + bytes(5000) + b"7777"
    path = tmp_path / "f.grib2"
    path.write_bytes(data)
    expect = (len(data), algorithm, file_digest(data, algorithm))
    verify_file(path, expect, "f.grib2")
    verify_file(data, expect, "f.grib2")
    flipped = bytearray(data)
    flipped[2000] ^= 1
    path.write_bytes(bytes(flipped))
    for source in (path, bytes(flipped)):
        with pytest.raises(CorruptFileError, match=f"f.grib2: {algorithm} does not match"):
            verify_file(source, expect, "f.grib2")


def test_unknown_hash_algorithm_is_not_a_proof_of_corruption(tmp_path):
    path = tmp_path / "f.grib2"
    path.write_bytes(b"GRIB7777")
    with pytest.raises(GribError, match="f.grib2: the manifest names an unknown hash") as info:
        verify_file(path, (8, "nohash", "00"), "f.grib2")
    assert not isinstance(info.value, CorruptFileError)  # so the file is not quarantined
