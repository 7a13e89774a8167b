"""Training presets (YAML), shipped as package data of `mersemi.configs`: see
engine/config.py `presets()`."""
