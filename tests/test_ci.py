"""The README's commands and `.ci/run` must agree (CI calls the README's test command verbatim)."""

from __future__ import annotations

import re

from conftest import REPO


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```(?:bash|sh)?\n(.*?)```", text, re.S)
    assert block, "README must open with a fenced block of set-up commands"
    return [ln.strip() for ln in block.group(1).splitlines() if ln.strip() and not ln.startswith("#")]


def test_readme_opens_with_two_setup_lines():
    cmds = _readme_commands()
    assert len(cmds) == 2
    assert "torch==2.13.0" in cmds[0]


def test_ci_runs_the_readme_commands_verbatim():
    ci = (REPO / ".ci/run").read_text().splitlines()
    setup, test = _readme_commands()
    assert test in [ln.strip() for ln in ci]
    assert any(setup in ln for ln in ci)
