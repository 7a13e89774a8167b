"""The configuration schema: one frozen pydantic model per section of a preset, every field with
its description, and a validation error turned into one line naming the dotted key (`from_dict`).

Reading presets (YAML, `extends`, renamed keys) is engine/config.py; docs/config.md is written
from this schema by engine/config_reference.py.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .errors import MersemiError, one_line, shown
from .thresholds import Policy, TargetPer, check_target_precision
from .vocab import MER2024_CLASSES
from .votes import Disagreement, VoteWeights


class ConfigError(MersemiError, ValueError):
    """A configuration file or value is invalid; the message names the key."""


def _yaml_number(value: Any) -> Any:
    # YAML 1.1 reads "1e-3" (no dot) as a string: a numeric string is taken as the number.
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return value
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        raise PydanticCustomError("not_finite", "must be finite")
    return value


Number = Annotated[float, BeforeValidator(_yaml_number)]
# Sizes past these are typing mistakes, not configs (a hidden width of 10^8 would fail the round
# after minutes, out of memory).
MAX_WIDTH, MAX_COUNT = 65_536, 10_000_000


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)


class ModelConfig(_Section):
    kind: Literal["mrccl", "attention_baseline"] = Field(
        description="mrccl: the paper's model (modality encoders, invariant encoder, one classifier per modality "
                    "and a fusion classifier, multi-classifier voting); attention_baseline: MERTools' attention "
                    "fusion, the reference row of the ablation")
    encoder: Literal["mlp", "transformer_v"] = Field(
        description="mlp: a projection to `hidden` followed by `mlp_blocks` residual feed-forward blocks; "
                    "transformer_v: the paper's one-layer Transformer encoder over a length-1 sequence, computed "
                    "without the query and key projections (the same function)")
    hidden: int = Field(gt=0, le=MAX_WIDTH, description="width of every modality encoding")
    mlp_blocks: int = Field(ge=0, le=100,
                            description="residual feed-forward blocks after the projection in the mlp encoder")
    mlp_ffn_dim: int = Field(gt=0, le=MAX_WIDTH, description="inner width of those blocks")
    ffn_dim: int = Field(gt=0, le=MAX_WIDTH, description="feed-forward width of the transformer_v encoder")
    dropout: Number = Field(ge=0, lt=1, description="dropout rate in encoders and classifiers")
    classifier_dims: list[Annotated[int, Field(gt=0, le=MAX_WIDTH)]] = Field(
        min_length=1, description="hidden layer widths of each classifier (the paper: 256, 128)")
    vote_weights: dict[str, Annotated[Number, Field(ge=0)]] = Field(
        description="multi-classifier voting: the weight of each modality's classifier by modality name, and of "
                    "the fusion classifier under `fusion` (the paper: audio 0.7, video 0.4, text 0.3, fusion 0.7)")
    default_vote_weight: Number = Field(ge=0, description="the voting weight of a modality not named in vote_weights")
    standardize: bool = Field(
        description="standardise each input dimension with the mean and std of the labeled and pool rows "
                    "(kept in the model, so a saved ensemble scores new rows the same way)")


class NoiseConfig(_Section):
    schedule: Literal["linear", "scaled_linear", "cosine", "sigmoid"] = Field(
        description="the diffusion-style noise schedule of the noisy copies (the paper: scaled_linear)")
    steps: int = Field(gt=0, le=MAX_COUNT,
                       description="K, the number of noise steps; each noisy copy draws a step in 0..K-1")
    beta_start: Number = Field(gt=0, lt=1, description="the schedule's first beta")
    beta_end: Number = Field(gt=0, lt=1, description="the schedule's last beta (at least beta_start)")
    per_sample: bool = Field(description="draw the noise step per sample (true) or once per batch, as the "
                                         "reference code does (false)")

    @model_validator(mode="after")
    def _ordered(self) -> NoiseConfig:
        if self.beta_end < self.beta_start:
            raise ValueError("beta_end: must be >= noise.beta_start")
        return self


class PretrainConfig(_Section):
    enabled: bool = Field(description="contrastive pre-training (IMCL-AE + IMCL-NE) on the labeled and pool rows "
                                      "before fine-tuning")
    epochs: int = Field(gt=0, le=MAX_COUNT, description="pre-training epochs")
    batch_size: int = Field(gt=0, le=MAX_COUNT, description="rows per step; NT-Xent compares 2N x 2N pairs")
    lr: Number = Field(gt=0, description="Adam learning rate")
    weight_decay: Number = Field(ge=0, description="Adam L2 weight decay")
    max_samples_per_epoch: int = Field(ge=0, description="rows drawn per epoch (0 = every row): keeps "
                                                         "pre-training on a 100k pool bounded")
    imcl_ae: Number = Field(ge=0, description="weight of the inter-modal contrastive loss (the paper: 1)")
    imcl_ne: Number = Field(ge=0, description="weight of the noise contrastive loss (the paper: 1)")
    min_steps: int = Field(ge=0, description="at least this many optimizer steps in all (0 = off): a few hundred "
                                             "pool rows make epochs of one batch")

    @model_validator(mode="after")
    def _some_loss(self) -> PretrainConfig:
        if self.enabled and self.imcl_ae == 0 and self.imcl_ne == 0:
            raise ValueError("imcl_ae: pre-training needs imcl_ae or imcl_ne > 0 (or enabled: false)")
        return self


class FinetuneConfig(_Section):
    folds: int = Field(ge=2, le=100, description="K of the K-fold fine-tuning on the gold labels, at most (see "
                                                 "fold_cap); evaluation folds hold gold labels only")
    fold_cap: Literal["smallest", "largest"] = Field(
        description="which class's gold count bounds K: smallest (every fold evaluates every class) or largest (a "
                    "class with fewer samples than folds is evaluated in fewer folds, and every fold trains on more)")
    epochs: int = Field(gt=0, le=MAX_COUNT, description="fine-tuning epochs per fold (at most)")
    batch_size: int = Field(gt=0, le=MAX_COUNT, description="rows per step")
    lr: Number = Field(gt=0, description="Adam learning rate")
    weight_decay: Number = Field(ge=0, description="Adam L2 weight decay")
    grad_clip: Number = Field(ge=0, description="gradient norm clipping (0 = off)")
    patience: int = Field(ge=0, description="epochs without a better evaluation score before a fold stops "
                                            "(0 = off)")
    oversample: bool = Field(description="draw minority classes with replacement up to the largest class's count "
                                         "in every training fold")
    max_samples_per_epoch: int = Field(ge=0, description="rows drawn per epoch (0 = all): tens of thousands of "
                                                         "accepted pseudo-labels would make epochs 30x longer")
    min_steps: int = Field(ge=0, description="each fold runs at least this many optimizer steps (0 = off), spread "
                                             "over the epochs: 30 gold samples make one batch an epoch")
    select: Literal["auto", "loss", "waf", "last"] = Field(
        description="the epoch a fold keeps: loss (lowest evaluation cross-entropy), waf (highest evaluation WAF), "
                    "last, or auto (last when the fold evaluates fewer than 100 samples, waf otherwise)")
    parallel_folds: int = Field(ge=0, le=1024, description="folds trained side by side (0 = one per CPU core; "
                                                           "one at a time on a GPU)")
    warm_epochs: int = Field(ge=0, le=MAX_COUNT, description="a round after another on the same folds starts each "
                                                             "fold from that round's model of the fold and trains "
                                                             "this many epochs (0 = every round from the "
                                                             "pre-trained weights, finetune.epochs)")
    calibrate: bool = Field(description="rescale every stored probability by temperatures fitted on the "
                                        "out-of-fold predictions (engine/calibration.py)")
    average: Literal["geometric", "arithmetic"] = Field(
        description="how fold models' probabilities combine: geometric (mean log-probability, renormalised) or "
                    "arithmetic")


class PropagationConfig(_Section):
    enabled: bool = Field(description="label spreading over the pre-trained embedding joins the ensemble's "
                                      "scores (needs pre-training; skipped with a note without it)")
    neighbours: int = Field(gt=0, le=1000, description="k of the k-nearest-neighbour graph")
    alpha: Number = Field(gt=0, lt=1, description="how far labels travel along the graph (Zhou et al.: 0.99)")
    iterations: int = Field(gt=0, le=100_000, description="spreading iterations")
    knn: Literal["auto", "exact", "ivf", "pynndescent"] = Field(
        description="how the neighbour graph is found: exact (every pair compared: FAISS's flat index on a CPU, "
                    "blocks of rows on a GPU), ivf (FAISS's inverted file, approximate), pynndescent "
                    "(approximate) or auto (exact where it is estimated to take a few seconds on this machine, "
                    "pynndescent above; exact on a GPU); where the whole graph would cost more, a graph over a "
                    "sample first estimates whether the round keeps it")
    joint_fit_min: int = Field(ge=0, description="from this many gold samples the ensemble's and the graph's "
                                                 "weights are fitted together, and the graph is left out where it "
                                                 "lowers the out-of-fold WAF; below it each gets its own temperature")
    class_mass: Literal["equal", "per_label"] = Field(
        description="what a class's labels inject into the graph: equal (one unit per class, whatever its label "
                    "count) or per_label (one unit per label, Zhou et al.)")


class LossConfig(_Section):
    ce: Number = Field(gt=0, description="weight of the cross-entropy terms in fine-tuning (modality heads, "
                                         "fusion head, voted logits)")
    imcl_ae: Number = Field(ge=0, description="weight of the inter-modal contrastive loss during fine-tuning")
    imcl_ne: Number = Field(ge=0, description="weight of the noise contrastive loss during fine-tuning")
    contrastive_temperature_init: Number = Field(gt=0, description="initial value of the learnable NT-Xent "
                                                                   "temperatures (one per pair of views)")
    contrastive_temperature_min: Number = Field(gt=0, description="lower clamp of those temperatures")
    contrastive_temperature_max: Number = Field(gt=0, description="upper clamp of those temperatures")

    @model_validator(mode="after")
    def _ordered(self) -> LossConfig:
        if not self.contrastive_temperature_min <= self.contrastive_temperature_init <= \
                self.contrastive_temperature_max:
            raise ValueError("contrastive_temperature_init: must lie in [contrastive_temperature_min, "
                             "contrastive_temperature_max]")
        return self


class SelfTrainingConfig(_Section):
    use_pseudo_labels: bool = Field(description="false trains on human labels only (the 'w/o pseudo labels' "
                                                "ablation)")
    thresholds: dict[str, Annotated[Number, Field(ge=0, le=1)]] = Field(
        description="per-class thresholds by class name: a new project starts with them, the fixed policy "
                    "applies them after each round (the paper: 0.99, worried and surprise 0.85)")
    default_threshold: Number = Field(ge=0, le=1, description="the threshold of a class not named in thresholds")
    policy: Policy = Field(
        description="how a finished round sets the thresholds of the classes the policy may set: "
                    "target_precision (per class the lowest threshold whose candidates reach target_precision) or "
                    "fixed (this preset's thresholds)")
    target_precision: Number = Field(description="the expected precision the target_precision policy aims at, "
                                                 "in (0, 1]")
    target_per: TargetPer = Field(
        description="what must reach the target: sample (each candidate's calibrated confidence) or set (the "
                    "candidates' mean)")
    balance_cap: Number = Field(ge=0, description="with balance cap or no_starve: automatic acceptance keeps no "
                                                  "class above this multiple of its labeled share of all "
                                                  "pseudo-labels (0 = no cap)")
    balance: Literal["cap", "quota", "no_starve"] = Field(
        description="how the automatic step keeps the pseudo-labels class-balanced: cap (no class above balance_cap "
                    "times its labeled share), quota (every class in proportion to its labeled share, paced by "
                    "the class with the fewest candidates: a class without candidates holds the others back rather "
                    "than being starved) or no_starve (the cap, and nothing while a labeled class would be left "
                    "with no pseudo-label)")
    gate: Literal["none", "folds"] = Field(
        description="what a candidate must pass besides its threshold: none, or folds (every fold model of the round "
                    "in force votes for its predicted class: the ensemble agrees, UPS-style)")
    pseudo_loss: Literal["plain", "doubly_robust"] = Field(
        description="how pseudo-labels enter the loss: plain (like labels) or doubly_robust (Zhu et al. 2023: the "
                    "labeled rows' loss + the loss on every model label, pseudo-labels and the round in force's "
                    "out-of-fold classes of the gold rows, - the loss on those out-of-fold classes; where the model's "
                    "labels are as wrong as its out-of-fold errors say, the last two cancel)")
    guard: Literal["log_loss", "reverse"] = Field(
        description="what discards an automatic round: log_loss (its out-of-fold log-loss on the gold samples is worse "
                    "than the round in force's) or reverse (that, or reverse validation: a model trained on the "
                    "pseudo-labels alone predicts the gold samples worse than the loop's first round did out of fold, "
                    "at the guard_level bootstrap bound)")
    guard_level: Number = Field(gt=0.5, lt=1, description="reverse guard: the round is discarded when the upper "
                                                          "guard_level bootstrap bound of its balanced-accuracy "
                                                          "difference is below zero")
    policy_overrides_reviewers: bool = Field(
        description="false: the policy sets only the classes whose threshold no person owns (a person's value is "
                    "theirs until they let the policy set it); true: it sets every class after each round")

    @field_validator("target_precision")
    @classmethod
    def _target(cls, value: float) -> float:
        return check_target_precision(value, what="")

    @field_validator("thresholds")
    @classmethod
    def _one_per_class(cls, value: dict[str, float]) -> dict[str, float]:
        seen: dict[str, str] = {}
        for name in value:
            if (other := seen.setdefault(name.lower(), name)) != name:
                raise ValueError(f"{other!r} and {name!r} name the same class (class names match case-insensitively)")
        return value

    def threshold_for(self, classes: list[str]) -> list[float]:
        """THE mapping of this preset's thresholds to a project's classes (class order): a class
        named case-insensitively, as class names are everywhere, takes its value; any other
        default_threshold. A new project's thresholds, the paper preset and the fixed policy."""
        self.check_classes(classes)
        by_name = {name.lower(): value for name, value in self.thresholds.items()}
        return [by_name.get(c.lower(), self.default_threshold) for c in classes]

    def check_classes(self, classes: list[str]) -> None:
        """A threshold named for a class that is neither the project's nor one of MER2024's
        (which the shipped presets name, whatever the project's classes) is a typo ("ecstatic")
        or a config for another project: refused, naming it."""
        known = {c.lower() for c in (*classes, *MER2024_CLASSES)}
        unknown = [n for n in self.thresholds if n.lower() not in known]
        if unknown:
            raise ConfigError(f"self_training.thresholds: {unknown[0]!r} is not a class of this project "
                              f"({', '.join(classes)})")


class VotesConfig(_Section):
    disagreement: Disagreement = Field(
        description="what training makes of a card's votes (mersemi overlap): hold_out trains the majority of its "
                    "K votes as a hard label and keeps a tie out until it is adjudicated; soft trains every card "
                    "with all its votes on their distribution (the tie too, until adjudicated)")
    weights: VoteWeights = Field(
        description="equal: every vote counts the same; probes: each vote counts by its reviewer's accuracy on the "
                    "gold probes (a one-coin Dawid-Skene posterior; with hold_out its single most likely class "
                    "trains)")


class Config(_Section):
    seed: int = Field(ge=0, le=2**32 - 1, description="seed of every random draw of a round")
    device: Literal["auto", "cpu", "cuda"] = Field(description="where a round trains: auto (CUDA when present), "
                                                               "cpu or cuda")
    cpu_train_threads: int = Field(ge=0, le=1024, description="CPU threads for training steps (0 = torch's default); "
                                                     "scoring uses torch's default")
    score_batch_size: int = Field(gt=0, le=MAX_COUNT,
                                  description="rows per forward pass when scoring the pool and the test split")
    model: ModelConfig
    noise: NoiseConfig
    pretrain: PretrainConfig
    finetune: FinetuneConfig
    propagation: PropagationConfig
    loss: LossConfig
    self_training: SelfTrainingConfig
    votes: VotesConfig

    @model_validator(mode="after")
    def _baseline_has_no_contrastive_heads(self) -> Config:
        if self.model.kind == "attention_baseline":
            if self.pretrain.enabled:
                raise ValueError("pretrain.enabled: must be false for model.kind attention_baseline")
            for term in ("imcl_ae", "imcl_ne"):
                if getattr(self.loss, term) > 0:
                    raise ValueError(f"loss.{term}: must be 0 for model.kind attention_baseline")
        return self

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump()

    def replace(self, **changes: Any) -> Config:
        """Copy with dotted-key overrides, e.g. replace(**{"finetune.epochs": 3})."""
        d = self.to_dict()
        for key, value in changes.items():
            node = d
            *parents, leaf = key.split(".")
            for p in parents:
                node = node[p]
            if leaf not in node:
                raise ConfigError(unknown_key(key))
            node[leaf] = value
        return from_dict(d)


SECTIONS: dict[str, type[_Section]] = {name: f.annotation for name, f in Config.model_fields.items()  # type: ignore
                                       if isinstance(f.annotation, type) and issubclass(f.annotation, _Section)}


# Keys renamed since checkpoints and user presets were written: the old name is read as the new.
RENAMED = {"loss.temperature_init": "loss.contrastive_temperature_init",
           "loss.temperature_min": "loss.contrastive_temperature_min",
           "loss.temperature_max": "loss.contrastive_temperature_max"}
RENAMED_VALUES = {"self_training.policy": {"thresholds": "fixed"}}
# Keys that are gone, and why: read from an older checkpoint they are dropped; in a preset they
# are an error that says so.
REMOVED = {"propagation.max_rows": "label spreading runs at any size now; propagation.knn chooses how the graph "
                                   "is found"}


def from_dict(data: dict[str, Any], source: str = "config") -> Config:
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: config: expected a mapping, got {type(data).__name__}")
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise ConfigError(f"{source}: {_first_error(e)}") from None


def unknown_key(dotted: str) -> str:
    """The message for a key the schema does not have, saying where a renamed or removed one went."""
    hint = (f" (renamed to {RENAMED[dotted]})" if dotted in RENAMED else
            f" ({REMOVED[dotted]})" if dotted in REMOVED else "")
    return f"{dotted}: unknown key{hint}"


def _first_error(e: ValidationError) -> str:
    """The first problem as 'dotted.key: what is wrong', in this project's words."""
    err = e.errors(include_url=False)[0]
    loc = _dotted(err["loc"])
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    if kind == "extra_forbidden":
        return unknown_key(loc)
    if kind == "missing":
        return f"{loc}: missing"
    if kind == "value_error":
        # A section's validator names the key within the section ("beta_end: ..."); a field's
        # validator says what is wrong with the field.
        message = str(ctx.get("error", err["msg"]))
        if not re.match(r"[a-z_.]+: ", message):
            return f"{loc}: {message}"
        return f"{loc}.{message}" if loc and not message.startswith(loc.split(".")[0] + ".") else message
    bounds = {"greater_than": ">", "greater_than_equal": ">=", "less_than": "<", "less_than_equal": "<="}
    if kind in bounds:
        bound = next(iter(ctx.values()))
        return f"{loc}: must be {bounds[kind]} {bound}, got {shown(value)}"
    if kind == "literal_error":
        return f"{loc}: must be {ctx.get('expected', '')}; got {shown(value)}"
    if kind in ("finite_number", "not_finite"):
        return f"{loc}: must be finite, got {shown(value)}"
    if kind == "too_short":
        return f"{loc}: must not be empty"
    words = {"int_type": "an integer", "int_from_float": "an integer", "int_parsing": "an integer",
             "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
             "string_type": "a string", "dict_type": "a mapping", "model_type": "a mapping",
             "model_attributes_type": "a mapping", "list_type": "a list"}
    if kind in words:
        return f"{loc or 'config'}: expected {words[kind]}, got {shown(value)}"
    return f"{loc}: {one_line(err['msg'])}"


def _dotted(loc: tuple) -> str:
    parts = []
    for part in loc:
        parts.append(f"[{part}]" if isinstance(part, int) else str(part))
    return ".".join(parts).replace(".[", "[")


def iter_keys() -> Iterator[str]:
    """Every dotted key of the schema (for tests and docs)."""
    for name in Config.model_fields:
        if name in SECTIONS:
            yield from (f"{name}.{k}" for k in SECTIONS[name].model_fields)
        else:
            yield name
