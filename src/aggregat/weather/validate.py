"""Compare what a run's files hold with what the catalogue expects.

Météo-France has changed formats without notice before: parameters that appear, disappear or
change encoding are reported (as warnings: the run is still extracted with what is there).
"""

from __future__ import annotations

import os
from collections import defaultdict
from collections.abc import Sequence

from aggregat.weather.decode_task import TaskResult
from aggregat.weather.products import Product

EXPECTED_ENCODING = ("grid_ccsds", 16)


def _package_and_group(product: Product, rel: str) -> tuple[str, tuple[int, int]] | None:
    parts = os.path.basename(rel).split("__")
    if len(parts) < 4 or parts[2] not in product.packages:
        return None
    try:
        return parts[2], product.group_of(parts[3])
    except Exception:
        return None


def validate_run(product: Product, rels: Sequence[str], results: Sequence[TaskResult]) -> list[str]:
    """Human-readable differences between the files and the catalogue (empty when all match)."""
    headers_by_path: dict[str, list] = defaultdict(list)
    rel_by_path: dict[str, str] = {}
    for rel, result in zip(rels, results, strict=True):
        headers_by_path[result.path].extend(result.headers)
        rel_by_path[result.path] = rel
    findings: dict[tuple[str, str, str], list[str]] = defaultdict(list)
    for path, headers in headers_by_path.items():
        where = _package_and_group(product, rel_by_path[path])
        if where is None:
            findings[("?", "unknown file", os.path.basename(path))].append("")
            continue
        package, group = where
        label = product.group_label(group)
        expected = {(p.name, s) for p in product.parameters(package)
                    for s in product.expected_steps(p, group)}
        expected_names = {name for name, _ in expected}
        found = {(h.param or f"{h.short_name}{list(h.key)}", h.end_step) for h in headers}
        found_names = {name for name, _ in found}
        for name in sorted(expected_names - found_names):
            findings[(package, "disappeared", name)].append(label)
        for name in sorted(found_names - expected_names):
            findings[(package, "appeared", name)].append(label)
        for name in sorted(expected_names & found_names):
            steps = sorted(s for n, s in expected - found if n == name)
            if steps:
                findings[(package, f"missing steps {_ranges(steps)} of", name)].append(label)
        # bitsPerValue 0 is a constant field (night-time radiation), not an encoding change.
        encodings = {(h.packing, h.bits) for h in headers if h.bits > 0}
        for enc in sorted(encodings - {EXPECTED_ENCODING}):
            findings[(package, "encoding changed to", f"{enc[0]}/{enc[1]} bits")].append(label)
    return [f"{package}: {kind} {name} (in {', '.join(x for x in groups if x) or 'file'})"
            for (package, kind, name), groups in sorted(findings.items())]


def _ranges(steps: list[int]) -> str:
    out, start, prev = [], steps[0], steps[0]
    for s in steps[1:] + [None]:
        if s is not None and s == prev + 1:
            prev = s
            continue
        out.append(f"{start}" if start == prev else f"{start}-{prev}")
        if s is not None:
            start = prev = s
    return ",".join(out) + "h"
