"""The proving ground's one entry point: python -m proving_ground COMMAND."""

import subprocess
import sys

from proving_ground.__main__ import COMMANDS
from proving_ground.stacks.compose import ROOT


def run(*args: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "proving_ground", *args]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=120)


def test_with_no_command_it_lists_every_command_with_its_summary():
    listed = run().stdout
    for command in COMMANDS:
        assert f"\n  {command} " in listed


def test_an_unknown_command_is_refused_with_the_list():
    result = run("bench-everything")
    assert result.returncode == 2
    assert "no command 'bench-everything'" in result.stderr and "bench-clients" in result.stderr


def test_every_command_answers_help_with_its_own_options():
    for command in COMMANDS:
        result = run(command, "--help")
        assert result.returncode == 0, result.stderr
        assert result.stdout.startswith(f"usage: python -m proving_ground {command} ")


def test_what_a_command_cannot_do_is_one_error_line_not_a_traceback():
    result = run("bench-clients", "--servers", "nope")
    assert result.returncode == 1
    assert result.stderr.startswith("error: no server nope;"), result.stderr
    assert "Traceback" not in result.stderr
