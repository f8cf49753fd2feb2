"""The SSH executor's command string: hostile argv and env values round-trip through a shell.

sshd hands the command string to the login shell (`$SHELL -c STRING`); here
/bin/sh plays that shell, locally. `printf '%s\\0'` prints every argument it
receives NUL-terminated, so the test compares exactly the argv that arrived.
"""

from __future__ import annotations

import subprocess

import pytest

from garrison.hosts.ssh import _SCRIPTS, HOST_PATH, command_argv, command_line

HOSTILE = [
    "plain",
    "with space",
    "  leading and trailing  ",
    "",
    "single'quote",
    'double"quote',
    "'",
    "''",
    "semi;colon; touch /tmp/pwned-by-quoting",
    "$(touch /tmp/pwned-by-quoting)",
    "`touch /tmp/pwned-by-quoting`",
    "${HOME}",
    "$HOME",
    "back\\slash\\",
    "new\nline",
    "tab\there",
    "glob*?[a]",
    "~",
    "~root",
    "-n",
    "--",
    "a=b",
    "&& || | > < >> 2>&1 &",
    "#comment",
    "!history",
    "{brace,expansion}",
    "ünïcödé ✓",
    "\x01\x7f control",
]


def _shell(command: str) -> list[str]:
    """Run command the way sshd would (login shell -c) and split printf's NUL-terminated output."""
    proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, check=True)
    out = proc.stdout.decode()
    assert out.endswith("\0") or out == ""
    return out.split("\0")[:-1]


@pytest.mark.parametrize("word", HOSTILE)
def test_each_hostile_word_round_trips(word: str) -> None:
    assert _shell(command_line(("printf", "%s\\0", word))) == [word]


def test_all_hostile_words_at_once_round_trip() -> None:
    assert _shell(command_line(("printf", "%s\\0", *HOSTILE))) == HOSTILE


@pytest.mark.parametrize("value", HOSTILE)
def test_env_values_round_trip(value: str) -> None:
    command = command_line(("sh", "-c", 'printf "%s\\0" "$GARRISON_V"'), {"GARRISON_V": value})
    assert _shell(command) == [value]


def test_path_and_locale_are_the_servers_and_env_overrides_win() -> None:
    command = command_line(("sh", "-c", 'printf "%s\\0" "$PATH" "$LC_ALL" "$X"'), {"X": "1", "LC_ALL": "C"})
    assert _shell(command) == [HOST_PATH, "C", "1"]


def test_argv_shape_env_sudo_timeout() -> None:
    assert command_argv(("id", "-un")) == ("env", "--", f"PATH={HOST_PATH}", "LC_ALL=C.UTF-8", "id", "-un")
    words = command_argv(("id",), {"A": "b c"}, sudo=True, timeout=2.5)
    assert words[:3] == ("sudo", "-n", "--")
    assert words[3:7] == ("timeout", "-k", "5", "2.5")
    assert words[7:] == ("env", "--", f"PATH={HOST_PATH}", "LC_ALL=C.UTF-8", "A=b c", "id")


def test_program_starting_with_dash_is_not_an_option_of_env() -> None:
    # `env --` ends env's options: "-n" is the program name, not an env flag.
    assert command_argv(("-n",))[:2] == ("env", "--")


@pytest.mark.parametrize(
    "argv, env",
    [
        ((), None),
        (("a=b", "x"), None),  # env would read it as an assignment
        (("echo", "nul\0byte"), None),
        (("true",), {"BAD NAME": "x"}),
        (("true",), {"1X": "x"}),
        (("true",), {"A=B": "x"}),
        (("true",), {"A": "nul\0"}),
    ],
)
def test_what_cannot_be_passed_safely_is_refused(argv, env) -> None:
    with pytest.raises(ValueError):
        command_line(argv, env)


def test_scripts_are_constants_data_only_as_positional_parameters(tmp_path) -> None:
    # The file scripts never contain data; a hostile path reaches them as "$1".
    hostile = tmp_path / "x; touch pwned $(touch pwned2) `touch pwned3`\nz"
    hostile.write_bytes(b"payload")
    command = command_line(("sh", "-c", _SCRIPTS["read"], "garrison", str(hostile)))
    proc = subprocess.run(["/bin/sh", "-c", command], capture_output=True, cwd=tmp_path)
    assert proc.returncode == 0 and proc.stdout == b"payload"
    assert sorted(p.name for p in tmp_path.iterdir()) == [hostile.name]
    missing = command_line(("sh", "-c", _SCRIPTS["read"], "garrison", str(tmp_path / "none")))
    assert subprocess.run(["/bin/sh", "-c", missing], capture_output=True).returncode == 3

