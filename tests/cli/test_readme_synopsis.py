"""The README's first commands and its `vitpose predict` synopsis.

The README starts with the set-up, main-job and test commands, and its torch pin is the one
`.ci/run` installs (also in its CPU-wheel line). The synopsis lists exactly the options of the
parser: an option added to the parser fails this test until the README shows it, and an option
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


CI = Path(__file__).resolve().parents[2] / ".ci" / "run"


def _first_block_commands() -> list[str]:
    """The commands of the README's first ```bash block (comments and blank lines dropped)."""
    text = README.read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return [line for line in block.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def test_readme_starts_with_set_up_main_job_and_tests():
    commands = _first_block_commands()
    assert commands[0].startswith("python3 -m venv .venv && . .venv/bin/activate && pip install torch==")
    assert commands[0].endswith('pip install -e ".[dev]"')
    main_job = next(i for i, c in enumerate(commands) if c.startswith("vitpose predict "))
    assert commands.index("python -m pytest -q") > main_job > 0


def test_torch_pin_is_the_same_in_the_set_up_the_cpu_install_line_and_ci():
    """The set-up line, the README's CPU-wheel line and .ci/run install one torch version."""
    set_up = re.search(r"pip install torch==([\w.+]+)", _first_block_commands()[0]).group(1)
    cpu_line = re.search(r"pip install torch==([\w.+]+) --index-url https://download\.pytorch\.org/whl/cpu",
                         README.read_text())
    assert cpu_line, "the README lost its CPU-wheel install line"
    ci = re.search(r'pip install -q "torch==([\w.+]+)"', CI.read_text())
    assert ci, ".ci/run no longer installs a pinned torch"
    assert set_up == cpu_line.group(1) == ci.group(1)
