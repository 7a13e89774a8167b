"""One error hierarchy (issue 10, point 12): every user-facing error derives from
MersemiError, and the command line turns any of them into one line on stderr."""
from __future__ import annotations

import pytest

from mersemi.db.connect import SchemaError
from mersemi.db.errors import RoundBusy
from mersemi.engine.config import ConfigError
from mersemi.engine.errors import InputError, MersemiError, UsageError, shown
from mersemi.ui import cli
from mersemi.service.project import Project, ProjectError

USER_FACING = [InputError, UsageError, ConfigError, ProjectError, SchemaError, RoundBusy]


@pytest.mark.parametrize("error", USER_FACING)
def test_every_user_facing_error_derives_from_the_base(error):
    assert issubclass(error, MersemiError)


@pytest.mark.parametrize("error", [SchemaError("database schema version 7, this tool reads version 2"),
                                   RoundBusy(3), InputError("a.npy: sample 'x': NaN\nor inf")])
def test_the_command_line_translates_the_base_class(error, monkeypatch, capsys, tmp_path):
    def fail(*_, **__):
        raise error
    monkeypatch.setattr(Project, "open", fail)
    assert cli.main(["status", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("mersemi: error: ") and err.count("\n") == 1, err
    assert " ".join(str(error).split()) in err


def test_shown_cuts_what_it_echoes():
    assert shown("abc") == "'abc'"
    assert len(shown("x" * 10_000)) == 200
    assert len(shown([list(range(1000))] * 1000)) <= 200
    assert len(shown(10 ** 5000)) <= 200
