"""The README's `vitpose predict` synopsis lists exactly the options of the parser (issue 16
item 7): an option added to the parser fails this test until the README shows it, and an option
the README shows must exist."""

from __future__ import annotations

import re
from pathlib import Path

from vitpose.cli.main import build_parser

README = Path(__file__).resolve().parents[2] / "README.md"


def _synopsis(command: str) -> str:
    """The lines of the "Command line" section's code block from ``vitpose COMMAND`` through
    its ``\\`` continuations."""
    lines = README.read_text().splitlines()
    section = lines.index("## Command line")
    start = next(i for i, line in enumerate(lines)
                 if i > section and line.startswith(f"vitpose {command} "))
    block = [lines[start]]
    while block[-1].rstrip().endswith("\\"):
        block.append(lines[start + len(block)])
    return "\n".join(block)


def _parser_options(command: str) -> set[str]:
    sub = build_parser()._subparsers._group_actions[0].choices[command]
    return {opt for action in sub._actions for opt in action.option_strings
            if opt.startswith("--") and opt != "--help"}


def test_predict_synopsis_matches_the_parser():
    shown = set(re.findall(r"--[a-z][a-z0-9-]*", _synopsis("predict")))
    options = _parser_options("predict")
    assert not options - shown, f"options missing from the README synopsis: {options - shown}"
    assert not shown - options, f"README synopsis options the parser lacks: {shown - options}"
