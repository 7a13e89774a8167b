"""The configuration schema (engine/config.py): presets load, every bad value is one line naming
the dotted key, renamed keys are read under their new names, and docs/config.md is current."""
from __future__ import annotations

import copy
from pathlib import Path

import pytest
from pydantic import ValidationError

from mersemi.engine.config import ConfigError, RENAMED, checkpoint_config, from_dict, load_config, presets
from mersemi.engine.config_reference import reference_markdown
from mersemi.engine.config_schema import iter_keys

DEFAULT = load_config().to_dict()
DOCS = Path(__file__).resolve().parents[1] / "docs" / "config.md"


def changed(**dotted) -> dict:
    d = copy.deepcopy(DEFAULT)
    for key, value in dotted.items():
        node = d
        *parents, leaf = key.split("__")
        for p in parents:
            node = node[p]
        if value is KeyError:
            del node[leaf]
        else:
            node[leaf] = value
    return d


def refused(data: dict, message: str) -> None:
    with pytest.raises(ConfigError) as e:
        from_dict(data)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_every_shipped_preset_loads():
    for name, path in presets().items():
        assert load_config(path).seed >= 0, name


@pytest.mark.parametrize("change, message", [
    ({"model__bogus": 1}, "model.bogus: unknown key"),
    ({"model__hidden": KeyError}, "model.hidden: missing"),
    ({"seed": -5}, "seed: must be >= 0, got -5"),
    ({"seed": 1e23}, "seed: expected an integer"),
    ({"seed": True}, "seed: expected an integer"),
    ({"model__hidden": 100_000_000}, "model.hidden: must be <= 65536"),
    ({"model__mlp_blocks": -1}, "model.mlp_blocks: must be >= 0"),
    ({"model__classifier_dims": []}, "model.classifier_dims: must not be empty"),
    ({"model__classifier_dims": [4, 0]}, "model.classifier_dims[1]: must be > 0"),
    ({"model__vote_weights__audio": -1}, "model.vote_weights.audio: must be >= 0"),
    ({"noise__beta_end": 0.0001}, "noise.beta_end: must be >= noise.beta_start"),
    ({"finetune__folds": 1}, "finetune.folds: must be >= 2"),
    ({"finetune__select": "best"}, "finetune.select: must be"),
    ({"finetune__lr": "fast"}, "finetune.lr: expected a number"),
    ({"finetune__lr": float("nan")}, "finetune.lr: must be finite"),
    ({"finetune__oversample": "yes"}, "finetune.oversample: expected true or false"),
    ({"self_training__thresholds__happy": 1.5}, "self_training.thresholds.happy: must be <= 1"),
    ({"self_training__target_precision": 0}, "self_training.target_precision: must lie in (0, 1], got 0"),
    ({"model": 5}, "model: expected a mapping"),
    ({"loss__contrastive_temperature_init": 5.0}, "loss.contrastive_temperature_init: must lie in"),
    ({"pretrain__imcl_ae": 0.0, "pretrain__imcl_ne": 0.0}, "pretrain.imcl_ae: pre-training needs"),
])
def test_a_bad_value_names_its_key(change, message):
    refused(changed(**change), message)


def test_yaml_numbers_written_without_a_dot_are_numbers(tmp_path):
    # YAML 1.1 reads 1e-3 as a string
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"extends: {presets()['default']}\nfinetune:\n  lr: 1e-3\n")
    assert load_config(cfg).finetune.lr == pytest.approx(1e-3)


def test_a_renamed_key_is_read_under_its_new_name_and_named_when_unknown(tmp_path):
    cfg = tmp_path / "old.yaml"
    cfg.write_text(f"extends: {presets()['default']}\nloss:\n  temperature_init: 0.2\n"
                   "self_training:\n  policy: fixed\n")
    loaded = load_config(cfg)
    assert loaded.loss.contrastive_temperature_init == 0.2 and loaded.self_training.policy == "fixed"
    refused(changed(loss__temperature_init=0.2), "(renamed to loss.contrastive_temperature_init)")
    old = copy.deepcopy(DEFAULT)
    old["loss"]["temperature_min"] = old["loss"].pop("contrastive_temperature_min")
    assert checkpoint_config(old).loss.contrastive_temperature_min == DEFAULT["loss"]["contrastive_temperature_min"]
    assert set(RENAMED.values()) <= set(iter_keys())


def test_configs_are_frozen():
    cfg = load_config()
    with pytest.raises(ValidationError):
        cfg.seed = 3  # type: ignore[misc]


def test_every_key_has_a_description_and_the_reference_is_current():
    text = reference_markdown()
    for key in iter_keys():
        row = next(line for line in text.splitlines() if line.startswith(f"| `{key}` |"))
        assert len(row.split("|")[4].strip()) > 10, key
    assert DOCS.read_text() == text, "docs/config.md is stale: run `make docs`"


def test_preset_thresholds_map_to_a_projects_classes_by_name_whatever_the_case():
    """THE mapping (SelfTrainingConfig.threshold_for) of a new project, the paper preset and the
    fixed policy: a class named in any case takes its value, any other the default."""
    st = from_dict(changed(self_training__thresholds={"Happy": 0.9, "sad": 0.8},
                           self_training__default_threshold=0.5)).self_training
    assert st.threshold_for(["happy", "SAD", "calm"]) == [0.9, 0.8, 0.5]
    st.check_classes(["HAPPY", "sad"])                    # named in another case: the project's class
    with pytest.raises(ConfigError, match="'ecstatic' is not a class of this project"):
        from_dict(changed(self_training__thresholds={"ecstatic": 0.9})).self_training.check_classes(["happy"])
    refused(changed(self_training__thresholds={"happy": 0.9, "HAPPY": 0.8}),
            "self_training.thresholds: 'happy' and 'HAPPY' name the same class")
