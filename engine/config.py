"""Training configuration: YAML presets validated into dataclasses.

Every field is required: the YAML files in `configs/` are the single source of the values.
A preset may start with `extends: other.yaml` (resolved relative to itself) and override
any subset; the merged result must still be complete. Unknown keys, missing keys and bad
values raise `ConfigError` naming the dotted key.
"""
from __future__ import annotations

import dataclasses
import types
from importlib import resources
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import yaml

from .errors import MersemiError, one_line, shown


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


class ConfigError(MersemiError, ValueError):
    """A configuration file or value is invalid; the message names the key."""


@dataclass(frozen=True)
class ModelConfig:
    kind: Literal["mrccl", "attention_baseline"]
    # "transformer_v": the paper's one-layer Transformer encoder computed without the query
    # and key projections (identical function over a length-1 sequence); "mlp": a projection
    # to `hidden` followed by `mlp_blocks` residual feed-forward blocks of width `mlp_ffn_dim`.
    encoder: Literal["mlp", "transformer_v"]
    hidden: int
    mlp_blocks: int          # residual feed-forward blocks in the MLP encoder (0 allowed)
    mlp_ffn_dim: int         # their inner width
    ffn_dim: int             # feed-forward width of the transformer_v encoder
    dropout: float
    classifier_dims: list[int]
    # Multi-classifier voting: weight per modality name plus "fusion". Modalities not
    # named get `default_vote_weight`.
    vote_weights: dict[str, float]
    default_vote_weight: float
    # Standardise each input dimension with the mean and std of the labeled + unlabeled rows
    # (stored in the model, so a saved ensemble scores new rows the same way).
    standardize: bool

    def __post_init__(self) -> None:
        _positive(self, "hidden", "mlp_ffn_dim", "ffn_dim")
        _non_negative(self, "mlp_blocks")
        _in_range(self, "dropout", 0.0, 1.0, closed_high=False)
        if not self.classifier_dims or any(d <= 0 for d in self.classifier_dims):
            raise ConfigError("model.classifier_dims: must be a non-empty list of positive ints")
        for k, w in self.vote_weights.items():
            if w < 0:
                raise ConfigError(f"model.vote_weights.{k}: must be >= 0, got {w}")
        if self.default_vote_weight < 0:
            raise ConfigError("model.default_vote_weight: must be >= 0")


@dataclass(frozen=True)
class NoiseConfig:
    schedule: Literal["linear", "scaled_linear", "cosine", "sigmoid"]
    steps: int
    beta_start: float
    beta_end: float
    # One timestep per sample (default) or one per batch as the reference code does.
    per_sample: bool

    def __post_init__(self) -> None:
        _positive(self, "steps")
        _in_range(self, "beta_start", 0.0, 1.0, closed_low=False, closed_high=False)
        _in_range(self, "beta_end", 0.0, 1.0, closed_low=False, closed_high=False)
        if self.beta_end < self.beta_start:
            raise ConfigError("noise.beta_end: must be >= noise.beta_start")


@dataclass(frozen=True)
class PretrainConfig:
    enabled: bool
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    # Cap on samples drawn per epoch (0 = all): keeps pre-training on a 100k pool bounded.
    max_samples_per_epoch: int
    # Weights of the pre-training loss terms; the paper's loss is IMCL-AE + IMCL-NE (1, 1).
    imcl_ae: float
    imcl_ne: float
    # At least this many optimizer steps in all (0 = off): a few hundred pool samples make
    # epochs of one or two batches, and `epochs` of them train nothing.
    min_steps: int

    def __post_init__(self) -> None:
        _positive(self, "epochs", "batch_size", "lr")
        _non_negative(self, "weight_decay", "max_samples_per_epoch", "imcl_ae", "imcl_ne", "min_steps")
        if self.enabled and self.imcl_ae == 0 and self.imcl_ne == 0:
            raise ConfigError("pretrain.imcl_ae: pre-training needs imcl_ae or imcl_ne > 0 (or enabled: false)")


@dataclass(frozen=True)
class FinetuneConfig:
    folds: int
    epochs: int
    batch_size: int
    lr: float
    weight_decay: float
    grad_clip: float         # 0 = off
    patience: int            # epochs without eval-WAF improvement before stopping; 0 = off
    oversample: bool         # resample minority classes up to the largest class in training folds
    # Cap on samples drawn per epoch (0 = all). Tens of thousands of accepted pseudo-labels,
    # oversampled, make an epoch 30x longer; a cap keeps evaluation (and early stopping)
    # regular and a round bounded.
    max_samples_per_epoch: int
    # Each fold runs at least this many optimizer steps (0 = off), spread over `epochs`
    # evaluations: 30 gold samples make one batch per epoch, and 20 such epochs leave the
    # fold models nearly uniform. Large training sets are unaffected.
    min_steps: int
    # The epoch a fold keeps: "loss" = lowest eval cross-entropy, "waf" = highest eval WAF
    # (saturates on tiny folds), "last", or "auto" = "last" when the fold's evaluation set
    # holds fewer than SELECT_AUTO_MIN_EVAL (engine/train.py) samples (picking an epoch on 7 samples chose
    # near-uniform early models that calibration then sharpened: on digits at 5 % labeled the
    # candidates' expected precision was 0.997 against 0.849 real), "waf" otherwise (eval
    # log-loss bottoms out at epoch 2-3 where WAF peaks at 10-20: on the synthetic default
    # scale "loss" cost 6 CV and 4 test WAF points; calibration fixes the confidences after).
    select: Literal["auto", "loss", "waf", "last"]
    # Temperature scaling fitted on the out-of-fold predictions rescales every stored
    # probability (engine/calibration.py); false keeps the raw ensemble average.
    calibrate: bool
    # How the fold models' probabilities are combined: "geometric" (mean log-probability,
    # renormalised; one confident fold cannot outvote the others' doubt) or "arithmetic".
    average: Literal["geometric", "arithmetic"]

    def __post_init__(self) -> None:
        if self.folds < 2:
            raise ConfigError(f"finetune.folds: must be >= 2, got {self.folds}")
        _positive(self, "epochs", "batch_size", "lr")
        _non_negative(self, "weight_decay", "grad_clip", "patience", "max_samples_per_epoch", "min_steps")


@dataclass(frozen=True)
class PropagationConfig:
    # Label spreading over the pre-trained embedding (engine/propagation.py): its class
    # distributions join the ensemble's, with weights fitted on the out-of-fold predictions
    # (engine/calibration.fit_weights). Needs pre-training; skipped (with a note) without it.
    enabled: bool
    neighbours: int          # k of the k-nearest-neighbour graph
    alpha: float             # in (0, 1): how far labels travel (Zhou et al.: 0.99)
    iterations: int
    # The graph compares every pair of rows: 111 s at 120,000 rows on 2 CPU cores. A round
    # with more rows (gold, extra, pool, test) skips it, with a note.
    max_rows: int
    # From this many gold samples the ensemble's and the graph's weights are fitted together;
    # below it each gets its own temperature (a joint fit on a few dozen chases noise).
    joint_fit_min: int
    # What a class's labels inject into the graph: "equal" (every class the same, whatever
    # its label count) or "per_label" (Zhou et al.); see engine/propagation.py.
    class_mass: Literal["equal", "per_label"]

    def __post_init__(self) -> None:
        _positive(self, "neighbours", "iterations", "max_rows")
        _non_negative(self, "joint_fit_min")
        _in_range(self, "alpha", 0.0, 1.0, closed_low=False, closed_high=False)


@dataclass(frozen=True)
class LossConfig:
    ce: float                # cross-entropy terms (modality heads, fusion head, voted logits)
    imcl_ae: float           # inter-modal contrastive loss during fine-tuning
    imcl_ne: float           # noise contrastive loss during fine-tuning
    temperature_init: float
    temperature_min: float
    temperature_max: float

    def __post_init__(self) -> None:
        _positive(self, "ce")  # fine-tuning without the supervised term learns no classes
        _non_negative(self, "imcl_ae", "imcl_ne")
        _positive(self, "temperature_init", "temperature_min", "temperature_max")
        if not self.temperature_min <= self.temperature_init <= self.temperature_max:
            raise ConfigError("loss.temperature_init: must lie in [temperature_min, temperature_max]")


@dataclass(frozen=True)
class SelfTrainingConfig:
    # False trains on human labels only (gold + relabels): the "w/o pseudo labels" ablation.
    use_pseudo_labels: bool
    # Per-class pseudo-label thresholds by class name (the paper's preset): a new project
    # starts with them and the app's preset button restores them. The thresholds a round
    # applies are the project's own, stored in its database.
    thresholds: dict[str, float]
    default_threshold: float
    # How a finished round sets the project's thresholds: "target_precision" = per class the
    # lowest threshold whose candidates' expected (mean calibrated) precision reaches
    # `target_precision` (engine/selection.py); "thresholds" = leave them as they are (the
    # paper's fixed preset, or what the reviewer set).
    policy: Literal["target_precision", "thresholds"]
    target_precision: float
    # What must reach the target: "set" = the candidates' mean confidence (some candidates
    # below the target, more above it); "sample" = each candidate's confidence, so that every
    # subset of them, later rounds' additions included, is expected to reach it too.
    target_per: Literal["set", "sample"]
    # Automatic acceptance keeps no class above this multiple of its labeled share of all
    # pseudo-labels (nor below this multiple of its labeled count); 0 = no cap.
    balance_cap: float

    def __post_init__(self) -> None:
        for k, t in self.thresholds.items():
            if not 0.0 <= t <= 1.0:
                raise ConfigError(f"self_training.thresholds.{k}: must lie in [0, 1], got {t}")
        _in_range(self, "default_threshold", 0.0, 1.0)
        if not 0.0 < self.target_precision <= 1.0:
            raise ConfigError(f"self_training.target_precision: must lie in (0, 1], got {shown(self.target_precision)}")
        _non_negative(self, "balance_cap")

    def threshold_for(self, classes: list[str]) -> list[float]:
        return [self.thresholds.get(c, self.default_threshold) for c in classes]


@dataclass(frozen=True)
class Config:
    seed: int
    device: Literal["auto", "cpu", "cuda"]
    # Intra-op threads for CPU training steps (0 = torch's default). Small-batch steps are
    # latency-bound: with passive OpenMP waiting, 2 threads made them ~2x slower than 1.
    # Scoring (large batches) always uses torch's default.
    cpu_train_threads: int
    score_batch_size: int
    model: ModelConfig
    noise: NoiseConfig
    pretrain: PretrainConfig
    finetune: FinetuneConfig
    propagation: PropagationConfig
    loss: LossConfig
    self_training: SelfTrainingConfig

    def __post_init__(self) -> None:
        _positive(self, "score_batch_size")
        _non_negative(self, "cpu_train_threads")
        if self.model.kind == "attention_baseline":
            # The baseline has no contrastive heads: a config asking for them is a mistake.
            if self.pretrain.enabled:
                raise ConfigError("pretrain.enabled: must be false for model.kind attention_baseline")
            for term in ("imcl_ae", "imcl_ne"):
                if getattr(self.loss, term) > 0:
                    raise ConfigError(f"loss.{term}: must be 0 for model.kind attention_baseline")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def replace(self, **changes: Any) -> Config:
        """Copy with dotted-key overrides, e.g. replace(**{"finetune.epochs": 3})."""
        d = self.to_dict()
        for key, value in changes.items():
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            if leaf not in node:
                raise ConfigError(f"{key}: unknown key")
            node[leaf] = value
        return from_dict(d)


# --------------------------------------------------------------------------- loading

def load_config(path: str | Path | None = None) -> Config:
    """Load a YAML preset (default: configs/default.yaml), resolving `extends`."""
    path = Path(path) if path is not None else preset_path("default")
    return from_dict(_read_yaml(path, seen=()), source=str(path))


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    try:
        return _build(Config, data, prefix="")
    except ConfigError as e:
        raise ConfigError(f"{source}: {e}") from None


# Keys added after checkpoints were first written, with the values those checkpoints were
# trained under: an older round's ensemble still loads and scores exactly as it did.
_CHECKPOINT_DEFAULTS = {
    "model": {"standardize": False},
    "pretrain": {"min_steps": 0},
    "finetune": {"min_steps": 0, "select": "waf", "calibrate": False, "average": "arithmetic"},
    "propagation": {"enabled": False, "neighbours": 7, "alpha": 0.99, "iterations": 30, "max_rows": 30000,
                    "joint_fit_min": 100, "class_mass": "per_label"},
}


def checkpoint_config(data: dict[str, Any]) -> Config:
    """The config saved with a round's ensemble (older checkpoints lack newer keys)."""
    return from_dict(_merge(_CHECKPOINT_DEFAULTS, data), source="checkpoint config")


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
        if path.stat().st_size > MAX_CONFIG_BYTES:
            raise ConfigError(f"larger than {MAX_CONFIG_BYTES:,} bytes: not a config file")
        text = path.read_text(encoding="utf-8")
        data = yaml.load(text, Loader=_NoAliasLoader) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: not a file (a folder)") from None
    except ConfigError as e:  # too large, or an alias
        raise ConfigError(f"{path}: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not a text file (not UTF-8)") from None
    except OSError as e:
        raise ConfigError(f"{path}: unreadable ({e.strerror or e.__class__.__name__})") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML ({one_line(e)})") from None
    except RecursionError:
        raise ConfigError(f"{path}: nested too deeply to be a config") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    parent = data.pop("extends", None)
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


def _build(cls: Any, data: Any, prefix: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{prefix or 'config'}: expected a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in fields(cls)]
    for key in data:
        if key not in names:
            raise ConfigError(f"{prefix}{key}: unknown key")
    kwargs = {}
    for name in names:
        key = f"{prefix}{name}"
        if name not in data:
            raise ConfigError(f"{key}: missing")
        kwargs[name] = _coerce(hints[name], data[name], key)
    return cls(**kwargs)  # section validators raise with the full dotted key


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return _build(tp, value, prefix=f"{key}.")
    if origin is Literal:
        choices = typing.get_args(tp)
        if value not in choices:
            raise ConfigError(f"{key}: must be one of {', '.join(map(str, choices))}; got {shown(value)}")
        return value
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if origin is list:
        (item,) = typing.get_args(tp)
        if not isinstance(value, list):
            raise ConfigError(f"{key}: expected a list, got {shown(value)}")
        return [_coerce(item, v, f"{key}[{i}]") for i, v in enumerate(value)]
    if origin is dict:
        kt, vt = typing.get_args(tp)
        if not isinstance(value, dict):
            raise ConfigError(f"{key}: expected a mapping, got {shown(value)}")
        return {_coerce(kt, k, f"{key}"): _coerce(vt, v, f"{key}.{k}") for k, v in value.items()}
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true or false, got {shown(value)}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {shown(value)}")
        return value
    if tp is float:
        # YAML reads "1e-3" as a string; accept numeric strings explicitly.
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise ConfigError(f"{key}: expected a number, got {shown(value)}") from None
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{key}: expected a number, got {shown(value)}")
        if value != value or value in (float("inf"), float("-inf")):
            raise ConfigError(f"{key}: must be finite, got {shown(value)}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {shown(value)}")
        return value
    raise TypeError(f"unsupported config type {tp} at {key}")


# Validators used in __post_init__; they name the key with its section prefix.
def _section(obj: Any) -> str:
    return {
        ModelConfig: "model.", NoiseConfig: "noise.", PretrainConfig: "pretrain.",
        FinetuneConfig: "finetune.", PropagationConfig: "propagation.", LossConfig: "loss.",
        SelfTrainingConfig: "self_training.",
    }.get(type(obj), "")


def _positive(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if not v > 0:
            raise ConfigError(f"{_section(obj)}{n}: must be > 0, got {v}")


def _non_negative(obj: Any, *names: str) -> None:
    for n in names:
        v = getattr(obj, n)
        if v < 0:
            raise ConfigError(f"{_section(obj)}{n}: must be >= 0, got {v}")


def _in_range(obj: Any, name: str, lo: float, hi: float,
              closed_low: bool = True, closed_high: bool = True) -> None:
    v = getattr(obj, name)
    ok_lo = v >= lo if closed_low else v > lo
    ok_hi = v <= hi if closed_high else v < hi
    if not (ok_lo and ok_hi):
        lb, rb = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ConfigError(f"{_section(obj)}{name}: must lie in {lb}{lo}, {hi}{rb}, got {v}")
