"""Imports point one way: the library layers never import the jobs (ops) or the CLI above them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import aggregat

PACKAGE = Path(aggregat.__file__).parent
# Library layers: they are used by ops/ and cli/, so they must not import them.
LIBRARY = ("weather", "forecast", "energy", "bank")


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every absolute module an ``import``/``from`` names, at any depth (functions included)."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative import: resolve against the module's package
                base = path.relative_to(PACKAGE.parent).with_suffix("").parts[:-node.level]
                module = ".".join(base + ((node.module,) if node.module else ()))
            else:
                module = node.module or ""
            # `from aggregat import cli` imports aggregat.cli
            found += [(node.lineno, f"{module}.{alias.name}") for alias in node.names]
    return found


def _violations() -> list[str]:
    out = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        layer = rel.parts[0] if len(rel.parts) > 1 else ""
        for line, module in _imports(path):
            for banned in ("aggregat.ops", "aggregat.cli"):
                if module != banned and not module.startswith(banned + "."):
                    continue
                if banned == "aggregat.cli" and layer != "cli":
                    out.append(f"{rel}:{line} imports {module} (only cli/ may import the CLI)")
                elif layer in LIBRARY:
                    out.append(f"{rel}:{line} imports {module} ({layer}/ is below ops/ and cli/)")
    return out


def test_imports_point_one_way():
    violations = _violations()
    assert not violations, "imports running up a layer:\n" + "\n".join(violations)


# What the storage-free forecasting core may import: itself, errors and the time rules.
CORE_MAY_IMPORT = ("aggregat.forecast.core", "aggregat.errors", "aggregat.timeutil")


def test_the_forecasting_core_is_storage_free():
    found = []
    for path in sorted((PACKAGE / "forecast" / "core").rglob("*.py")):
        for line, module in _imports(path):
            if module.startswith("aggregat") and not module.startswith(CORE_MAY_IMPORT):
                found.append(f"{path.relative_to(PACKAGE)}:{line} imports {module}")
    assert not found, "the forecasting core reaches storage:\n" + "\n".join(found)


def test_the_check_sees_function_level_imports(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from aggregat.cli.common import console\n"
                      "    import aggregat.ops\n")
    assert [m for _, m in _imports(module)] == ["aggregat.cli.common.console", "aggregat.ops"]


def _raised_text(node: ast.Raise) -> str:
    """The literal text of a raise statement's strings (f-string values left out)."""
    return "".join(c.value for c in ast.walk(node) if isinstance(c, ast.Constant)
                   and isinstance(c.value, str))


def test_library_errors_name_parameters_not_cli_flags():
    # A flag is the CLI's business; `aggregat ... --flag` inside backquotes is a command to run.
    flag = re.compile(r"(?<![\w-])--[a-z][\w-]*")
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        if rel.parts[0] == "cli":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Raise):
                text = re.sub(r"`[^`]*`", "", _raised_text(node))
                found += [f"{rel}:{node.lineno} {m}" for m in flag.findall(text)]
    assert not found, "library errors naming CLI flags:\n" + "\n".join(found)
