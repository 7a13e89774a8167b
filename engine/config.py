"""Training configuration: YAML presets read and validated into the frozen pydantic models of
engine/config_schema.py (Config, ConfigError and from_dict are imported from here as well).

Every field is required: the YAML files in `configs/` are the single source of the values, and
each field's description is its documentation (docs/config.md is generated from them:
`make docs`). A preset may start with `extends: other.yaml` (resolved relative to itself) and
override any subset; the merged result must still be complete. An unknown key, a missing one or
a bad value raises `ConfigError` naming the dotted key.
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .config_schema import REMOVED, RENAMED, RENAMED_VALUES, Config, ConfigError, from_dict
from .errors import UsageError, one_line, shown
from .safe_files import read_text


def presets() -> dict[str, Path]:
    """The YAML presets shipped with the package (the repository's configs/), by name.

    Read through importlib.resources so that an installed wheel finds them as well as a
    checkout; they are plain files either way, so `extends:` resolves beside them."""
    folder = Path(str(resources.files("mersemi.configs")))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))}


def preset_path(name: str) -> Path:
    """A shipped preset's file; ConfigError naming the presets when there is none."""
    found = presets()
    if name not in found:
        raise ConfigError(f"no preset {name!r} (presets: {', '.join(found)})")
    return found[name]


def load_config(path: str | Path | None = None) -> Config:
    """Load a YAML preset (default: configs/default.yaml), resolving `extends`."""
    path = Path(path) if path is not None else preset_path("default")
    return from_dict(_read_yaml(path, seen=()), source=str(path))


# Keys added after checkpoints were first written, with the values those checkpoints were
# trained under: an older round's ensemble still loads and scores exactly as it did.
_CHECKPOINT_DEFAULTS = {
    "model": {"standardize": False},
    "pretrain": {"min_steps": 0},
    "finetune": {"min_steps": 0, "select": "waf", "calibrate": False, "average": "arithmetic", "fold_cap": "largest",
                 "parallel_folds": 1, "warm_epochs": 0},
    "propagation": {"enabled": False, "neighbours": 7, "alpha": 0.99, "iterations": 30, "knn": "exact",
                    "joint_fit_min": 100, "class_mass": "per_label"},
    "self_training": {"policy_overrides_reviewers": True, "balance": "cap", "gate": "none", "pseudo_loss": "plain",
                      "guard": "log_loss", "guard_level": 0.9},
}


def checkpoint_config(data: dict[str, Any]) -> Config:
    """The config saved with a round's ensemble (older checkpoints lack newer keys and carry
    renamed ones)."""
    data = upgrade_names(data)
    for dotted in REMOVED:
        section, key = dotted.split(".")
        if isinstance(data.get(section), dict):
            data[section].pop(key, None)
    return from_dict(_merge(_CHECKPOINT_DEFAULTS, data), source="checkpoint config")


def upgrade_names(data: dict[str, Any]) -> dict[str, Any]:
    """A copy of a config mapping with renamed keys and values under their current names."""
    out = {k: dict(v) if isinstance(v, dict) else v for k, v in data.items()}
    for old, new in RENAMED.items():
        (section, key), (_, new_key) = old.split("."), new.split(".")
        node = out.get(section)
        if isinstance(node, dict) and key in node:
            node[new_key] = node.pop(key)
    for dotted, values in RENAMED_VALUES.items():
        section, key = dotted.split(".")
        node = out.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str) and node[key] in values:
            node[key] = values[node[key]]
    return out


MAX_CONFIG_BYTES = 1_000_000  # presets are a few KB; anything near this is not a config


class _NoAliasLoader(yaml.SafeLoader):
    """YAML without anchors and aliases: a config never needs them, and nine nested aliases
    expand to a billion strings (minutes and gigabytes before any check could run)."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise ConfigError(f"line {event.start_mark.line + 1}: YAML aliases (*{event.anchor}) are "
                              f"not allowed in a config; write the values out")
        return super().compose_node(parent, index)


def _read_yaml(path: Path, seen: tuple[Path, ...]) -> dict[str, Any]:
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"{path}: circular 'extends'")
    try:
        text = read_text(path, "config", MAX_CONFIG_BYTES)  # a regular file, bounded: never /dev/zero
    except UsageError as e:
        raise ConfigError(str(e)) from None
    try:
        data = yaml.load(text, Loader=_NoAliasLoader) or {}
    except ConfigError as e:  # an alias
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({one_line(e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
    data = upgrade_names(data)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise ConfigError(f"{path}: extends: expected a file name, got {shown(parent)}")
    try:
        base = _read_yaml(path.parent / parent, seen + (path,))
    except ConfigError as e:
        raise ConfigError(f"{path}: extends: {e}") from None
    return _merge(base, data)


def _merge(base: dict, over: dict) -> dict:
    out = dict(base)
    for k, v in over.items():
        # Mappings that are values (vote_weights, thresholds) replace rather than merge,
        # so that a preset can drop a key.
        if isinstance(v, dict) and isinstance(out.get(k), dict) and k not in _VALUE_MAPPINGS:
            out[k] = _merge(out[k], v)
        else:
            out[k] = v
    return out


_VALUE_MAPPINGS = {"vote_weights", "thresholds"}
