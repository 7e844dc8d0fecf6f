"""The README's commands agree with the code: every fenced `cnnkit` command parses, and those that need only
built-in data and take seconds run and succeed (the training ones run in the slow suite)."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"

# commands that run in seconds on built-in data (a prefix of the command line)
FAST = ("shapes ", "summary course_convnet", "cost", "models", "augment --list", "weights list", "data show scenes")
# placeholders in the README that stand for the user's own files
USER_FILES = ("photo.jpg", "path/to", "seven.png", ".pth", "faces.db", "IMG", "GT.json", "runs/", "scenes-",
              "resnet18.onnx", "lenet.pt", "pairs", "astronaut", "content.jpg", "style.jpg", "image.png", "PATH")


def readme_commands() -> list[str]:
    """Every `cnnkit ...` line in a fenced block (continuations joined, comments dropped)."""
    commands, inside, pending = [], False, ""
    for line in README.read_text().splitlines():
        if line.startswith("```"):
            inside, pending = not inside, ""
            continue
        if not inside:
            continue
        text = pending + line.split(" #")[0].strip()
        if text.endswith("\\"):
            pending = text[:-1].strip() + " "
            continue
        pending = ""
        m = re.search(r"(?:^|\s|-m )cnnkit (.+)$", text)
        if m and not text.startswith(("from ", "import ", ">>>")) and "..." not in text and "[" not in text:
            commands.append(m.group(1).strip())
    return commands


COMMANDS = readme_commands()


def test_the_readme_has_commands():
    assert len(COMMANDS) >= 30


@pytest.mark.parametrize("command", COMMANDS)
def test_every_readme_command_parses(command):
    from cnnkit.cli.main import build_parser

    parser = build_parser()
    try:
        args = parser.parse_args(shlex.split(command))
    except SystemExit as e:  # argparse: a usage error (exit 2) means the README and the code disagree
        raise AssertionError(f"`cnnkit {command}` does not parse (exit {e.code})") from None
    assert getattr(args, "func", None) is not None


@pytest.mark.parametrize("command", [c for c in COMMANDS if c.startswith(FAST) and not any(u in c for u in USER_FILES)])
def test_fast_readme_commands_run(command, run_cli, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, err = run_cli(*shlex.split(command))
    assert code == 0, f"`cnnkit {command}` failed: {err}"
    assert out.strip() or list(tmp_path.iterdir())  # it said or wrote something
