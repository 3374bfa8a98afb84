"""docs/cli.md names every command and every option the CLI has, so the reference cannot drift."""

import argparse
import re
from pathlib import Path

import pytest

from nas_core.cli import make_parser as build_parser

DOC = (Path(__file__).resolve().parent.parent / "docs" / "cli.md").read_text()


def _subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_command_has_a_section(name):
    assert re.search(rf"^## `{re.escape(name)}", DOC, re.M), f"docs/cli.md has no section for `{name}`"


@pytest.mark.parametrize("name", sorted(_subcommands()))
def test_every_option_of_a_command_is_documented(name):
    section = re.search(rf"^## `{re.escape(name)}.*?(?=^## |\Z)", DOC, re.M | re.S)
    assert section, name
    for action in _subcommands()[name]._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help":
                assert f"`{flag}" in section.group(0), f"docs/cli.md's `{name}` section lacks {flag}"
