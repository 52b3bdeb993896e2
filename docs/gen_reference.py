"""MkDocs hook (``hooks:`` in mkdocs.yml): the configuration reference generated from the pydantic
settings models of :mod:`aggregat.config`, and the CLI reference generated from the Typer app, as
two pages added to the site at build time (nothing generated is committed)."""

from __future__ import annotations

import inspect
import re
import sys
from pathlib import Path
from typing import Any

from mkdocs.structure.files import File

# The checkout's code is documented, not whatever `aggregat` is installed.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

PAGES = {"reference/configuration.md": "configuration", "reference/cli.md": "cli"}


def on_files(files, config):
    for path, kind in PAGES.items():
        content = configuration_page() if kind == "configuration" else cli_page()
        files.append(File.generated(config, path, content=content))
    return files


# -- configuration ---------------------------------------------------------------------------
def _field_comments(model: type) -> dict[str, str]:
    """Each field's comment in the model's source: the lines just above it and the one after
    it (the settings are documented where they are defined, not twice)."""
    comments: dict[str, str] = {}
    above: list[str] = []
    for line in inspect.getsource(model).splitlines()[1:]:
        text = line.strip()
        if text.startswith("#"):
            above.append(text.lstrip("# "))
            continue
        field = re.match(r"([a-z_][a-z0-9_]*)\s*:", text)
        if field and line.startswith("    ") and not line.startswith("     "):
            after = text.split("  # ", 1)[1] if "  # " in text else ""
            comments[field.group(1)] = " ".join([*above, after]).strip()
        above = []
    return comments


def _type_name(annotation: Any) -> str:
    """``list[int]``, ``str or None``, ``Literal['a', 'b']``: the annotation as a user reads it."""
    import types
    import typing

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_type_name(a) for a in args)
    if origin is typing.Literal:
        return "one of " + ", ".join(repr(a) for a in args)
    if origin is not None:
        return f"{origin.__name__}[{', '.join(_type_name(a) for a in args)}]"
    return "None" if annotation is type(None) else getattr(annotation, "__name__", str(annotation))


def _default(field) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if isinstance(value, list | dict) and not value:
        return "empty"
    if hasattr(value, "model_dump"):
        return "(table below)"
    return f"`{value!r}`".replace("'", '"') if value is not None else "none"


def _table(model: type, skip: tuple[str, ...] = ()) -> list[str]:
    comments = _field_comments(model)
    rows = ["| setting | type | default | what |", "|---|---|---|---|"]
    for name, field in model.model_fields.items():
        if name in skip:
            continue
        what = comments.get(name, "").replace("|", "\\|")
        rows.append(f"| `{name}` | `{_type_name(field.annotation)}` | {_default(field)} | "
                    f"{what} |")
    return rows


def configuration_page() -> str:
    from aggregat import config

    env = config.Environment
    lines = ["# Configuration reference", "",
             "Generated from the settings models in `aggregat/config.py` at each build. "
             "Every setting goes under `[defaults]` (merged under every environment) or "
             "`[env.NAME]`; a table below is `[env.NAME.<table>]`. Secrets are written "
             "`${NAME}` and read from `AGGREGAT_<ENV>_<NAME>` (see "
             "[Getting started](../index.md#configuration)). `aggregat env show` prints the "
             "resolved settings of an environment, secrets masked.", "",
             "## `[env.NAME]`", "", inspect.getdoc(env) or "", ""]
    sections = {name: f.annotation for name, f in env.model_fields.items()
                if inspect.isclass(f.annotation) and hasattr(f.annotation, "model_fields")}
    lines += _table(env, skip=("name", "source_file"))
    lines += ["", "`name` is the environment's name; `datalake`, `bank`, `registry` and "
              "`quarantine` default to folders under `root`."]
    for name, model in sections.items():
        lines += ["", f"## `[env.NAME.{name}]`", "", inspect.getdoc(model) or "", ""]
        lines += _table(model)
        for sub_name, sub in model.model_fields.items():  # [[env.NAME.forecast.targets]]
            inner = getattr(sub.annotation, "__args__", ())
            if inner and hasattr(inner[0], "model_fields"):
                lines += ["", f"### `[[env.NAME.{name}.{sub_name}]]`", "",
                          inspect.getdoc(inner[0]) or "", ""]
                lines += _table(inner[0])
    return "\n".join(lines) + "\n"


# -- CLI -------------------------------------------------------------------------------------
def _commands(group, path: str):
    """(path, command) of every command under ``group``, depth first, in the app's order."""
    for name, command in group.commands.items():
        full = f"{path} {name}"
        if hasattr(command, "commands"):
            yield full, command, True
            yield from _commands(command, full)
        else:
            yield full, command, False


def _option_row(param) -> str:
    names = ", ".join(f"`{o}`" for o in [*param.opts, *param.secondary_opts])
    if param.param_type_name == "argument":
        names = f"`{param.name.upper()}`" + ("..." if param.nargs == -1 else "")
    default = param.default
    shown = ("required" if param.required else "" if default in (None, False, ())
             else f"`{default}`")
    help_text = (getattr(param, "help", None) or "").replace("|", "\\|").replace("\n", " ")
    envvar = f" (env `{param.envvar}`)" if getattr(param, "envvar", None) else ""
    return f"| {names} | {help_text}{envvar} | {shown} |"


def cli_page() -> str:
    import typer.main

    from aggregat.cli.main import app

    root = typer.main.get_command(app)
    lines = ["# CLI reference", "",
             "Generated from the `aggregat` command (its Typer app) at each build; "
             "`aggregat COMMAND --help` prints the same. Every command takes `--env` and "
             "`--config`. Exit codes: 0 ok, 1 warning (`health`, `alerts`), 2 bad input or "
             "configuration, 3 partial run, 75 another run holds the lock.", "",
             "Global options: `aggregat [--verbose] [--log-json] [--version] COMMAND`.", ""]
    for path, command, is_group in _commands(root, "aggregat"):
        level = "##" if path.count(" ") == 1 else "###"
        lines += [f"{level} `{path}`", "", inspect.cleandoc(command.help or ""), ""]
        if is_group:
            continue
        params = [p for p in command.params if p.name != "help"]
        if params:
            lines += ["| option | what | default |", "|---|---|---|"]
            lines += [_option_row(p) for p in params]
            lines.append("")
    return "\n".join(lines) + "\n"
