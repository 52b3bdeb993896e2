"""``aggregat weather extract-file`` on files it cannot use: one line, exit 2, no output written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import eccodes
import numpy as np
import pytest

from child_process import child_env


def _run(tmp_path: Path, *files: Path) -> subprocess.CompletedProcess:
    sites = tmp_path / "sites.csv"
    sites.write_text("id,name,lat,lon\nparis,paris,48.85,2.35\n")
    return subprocess.run([sys.executable, "-m", "aggregat.cli.main", "weather", "extract-file",
                           *map(str, files), "--sites", str(sites), "--out",
                           str(tmp_path / "out.parquet"), "-j", "1"],
                          cwd=tmp_path, env=child_env(), capture_output=True, text=True)


def _one_line_error(done: subprocess.CompletedProcess, tmp_path: Path) -> str:
    assert done.returncode == 2, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "out.parquet").exists()  # never an empty output
    lines = [ln for ln in done.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, done.stderr
    return lines[0]


def lambert_file(path: Path) -> Path:
    """A tiny 2 m temperature field on a Lambert conformal grid (4 x 3 points)."""
    h = eccodes.codes_grib_new_from_samples("GRIB2")
    try:
        eccodes.codes_set(h, "gridDefinitionTemplateNumber", 30)
        for key, value in (("Nx", 4), ("Ny", 3), ("latitudeOfFirstGridPointInDegrees", 48.0),
                           ("longitudeOfFirstGridPointInDegrees", 2.0), ("LaDInDegrees", 46.0),
                           ("LoVInDegrees", 2.0), ("Latin1InDegrees", 46.0),
                           ("Latin2InDegrees", 46.0), ("DxInMetres", 2500),
                           ("DyInMetres", 2500), ("typeOfFirstFixedSurface", 103),
                           ("level", 2)):
            eccodes.codes_set(h, key, value)
        eccodes.codes_set_values(h, np.full(12, 280.0))
        path.write_bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
    return path


def test_lambert_site_outside_the_domain_is_named(tmp_path):
    path = lambert_file(tmp_path / "lambert.grib2")  # 4 x 3 points 90 km south of Paris
    line = _one_line_error(_run(tmp_path, path), tmp_path)
    assert "lambert.grib2" in line and "'paris'" in line and "outside" in line


def test_spectral_file_is_refused_naming_the_file(tmp_path):
    """Spherical harmonics have no grid points to place a site on."""
    h = eccodes.codes_grib_new_from_samples("sh_ml_grib2")
    path = tmp_path / "spectral.grib2"
    try:
        path.write_bytes(eccodes.codes_get_message(h))
    finally:
        eccodes.codes_release(h)
    line = _one_line_error(_run(tmp_path, path), tmp_path)
    assert "spectral.grib2" in line and "(sh grid" in line and "regrid the file" in line


def test_all_bad_files_write_nothing(tmp_path):
    bad = tmp_path / "bad.grib2"
    bad.write_bytes(b"GRIB" + b"\0" * 40)
    line = _one_line_error(_run(tmp_path, bad), tmp_path)
    assert "bad.grib2" in line


@pytest.mark.parametrize("key", ["latitudeOfFirstGridPoint", "longitudeOfLastGridPoint"])
def test_corrupt_grid_header_blames_the_file_not_the_sites(tmp_path, sim_arome, key):
    source = next(p for p in sim_arome["plain"] if "SP1" in str(p))
    out = bytearray()
    with open(source, "rb") as fh:  # one header value off by 30 degrees, the rest intact
        while (h := eccodes.codes_grib_new_from_file(fh)) is not None:
            eccodes.codes_set_long(h, key, eccodes.codes_get_long(h, key) - 30_000_000)
            out += eccodes.codes_get_message(h)
            eccodes.codes_release(h)
    path = tmp_path / "header.grib2"
    path.write_bytes(bytes(out))
    line = _one_line_error(_run(tmp_path, path), tmp_path)
    assert "header.grib2" in line and "corrupt" in line and "sites file" not in line
