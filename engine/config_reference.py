"""The configuration reference, docs/config.md, generated from the schema (engine/config_schema.py)
by `make docs`."""
from __future__ import annotations

from typing import Annotated, Any, Literal

from .config import load_config
from .config_schema import SECTIONS, Config


def reference_markdown() -> str:
    """docs/config.md: every key of every section with its type and description, and its value in
    the default preset (generated; a test fails when the file is stale)."""
    default = load_config().to_dict()
    lines = ["# Configuration reference", "",
             "Generated from the schema in `engine/config_schema.py` (`make docs`); do not edit by hand.", "",
             "A preset is a YAML file (`configs/*.yaml`, or your own passed to `mersemi train --config`). "
             "Every key is required; a preset may start with `extends: other.yaml` and override any subset. "
             "An unknown key, a missing one or a bad value is an error that names the dotted key.", ""]
    top = [(name, f) for name, f in Config.model_fields.items() if name not in SECTIONS]
    lines += _table("top level", "", top, default)
    for section, model in SECTIONS.items():
        lines += _table(f"`{section}`", f"{section}.", list(model.model_fields.items()), default[section])
    return "\n".join(lines) + "\n"


def _table(title: str, prefix: str, items: list, values: dict) -> list[str]:
    out = [f"## {title}", "", "| key | type | default preset | meaning |", "|---|---|---|---|"]
    for name, f in items:
        out.append(f"| `{prefix}{name}` | {_type_text(f)} | `{_value_text(values[name])}` | "
                   f"{(f.description or '').replace('|', '/')} |")
    return out + [""]


def _type_text(f: Any) -> str:
    import typing

    tp = f.annotation
    origin = typing.get_origin(tp)
    if origin is Literal:
        return " / ".join(f"`{a}`" for a in typing.get_args(tp))
    if origin is Annotated:
        tp = typing.get_args(tp)[0]
        origin = typing.get_origin(tp)
    names = {int: "integer", float: "number", bool: "true / false", str: "text"}
    if origin is list:
        return "list of integers"
    if origin is dict:
        return "mapping of name to number"
    bounds = [f"{sym} {getattr(m, attr)}" for m in f.metadata for attr, sym in
              (("gt", ">"), ("ge", ">="), ("lt", "<"), ("le", "<=")) if getattr(m, attr, None) is not None]
    return names.get(tp, getattr(tp, "__name__", str(tp))) + (f" ({', '.join(bounds)})" if bounds else "")


def _value_text(v: Any) -> str:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_value_text(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(map(_value_text, v)) + "]"
    return f"{v:g}" if isinstance(v, float) else str(v)
