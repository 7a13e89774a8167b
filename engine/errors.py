"""Errors the engine raises for bad user input (as opposed to bugs)."""


class InputError(ValueError):
    """Bad input data. The message is one line naming the file, the sample and the problem,
    e.g. ``features/text/clip_007.npy: sample clip_007: expected dimension 768, got 512``."""
