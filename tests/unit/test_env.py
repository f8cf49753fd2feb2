"""shared/.env: what `garrison env` writes is what garrison-exec (and our own parser) reads back."""

from __future__ import annotations

import pytest

from garrison.errors import ConfigError
from garrison.hosts.garrison_exec import parse_env
from garrison.workflows.env import mask, parse_assignment, render_env_file

HOSTILE = {
    "PLAIN": "abc",
    "QUOTES": 'a "b" \'c\'',
    "SHELL": "$(touch /tmp/x) `id` ${HOME}",
    "BACKSLASH": "C:\\path\\",
    "EQUALS": "k=v=w",
    "EMPTY": "",
    "SPACES": "  padded  ",
}


def test_render_then_parse_round_trips_hostile_values():
    assert parse_env(render_env_file(HOSTILE)) == HOSTILE


def test_assignments():
    assert parse_assignment("A=1=2") == ("A", "1=2")
    for bad in ("NOEQUALS", "1A=x", "A-B=x", "=x"):
        with pytest.raises(ConfigError, match="expected KEY=VALUE"):
            parse_assignment(bad)
    with pytest.raises(ConfigError, match="one line"):
        parse_assignment("A=x\ny")


def test_mask_never_shows_the_value():
    assert mask("supersecret") == "********" and "s" not in mask("supersecret")
    assert mask("") == "(empty)"
