"""The README and the docs/ pages stay true to the commands: every flag their command lines show exists."""

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

COMMANDS = {"train_util.py": "mixin.cli.train", "mixin-train": "mixin.cli.train",
            "xtract_mixin.py": "mixin.cli.xtract", "xtract-mixin": "mixin.cli.xtract",
            "eval_mixin.py": "mixin.cli.eval", "mixin-eval": "mixin.cli.eval",
            "mixin-serve": "mixin.cli.serve"}


#: The manual: the README and the pages it links in docs/.
MANUAL = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def readme_flags():
    """(command module, flag, line) for every flag on a code-block line of the manual that runs
    one of the commands, continuation lines included."""
    found = []
    for page in MANUAL:
        found += _page_flags(page.read_text().splitlines())
    return found


def _page_flags(lines):
    """:func:`readme_flags` of one page's lines."""
    found = []
    in_code, current = False, None
    for line in lines:
        if line.startswith("```"):
            in_code, current = not in_code, None
            continue
        if not in_code:
            continue
        continued = line[:1].isspace()
        for i, seg in enumerate(re.split(r"&&|\|\||;|\s\|\s", line.split("#")[0])):
            words = seg.split()
            at = next((k for k, w in enumerate(words) if Path(w).name in COMMANDS), None)
            if at is not None:
                current, words = COMMANDS[Path(words[at]).name], words[at + 1:]
            elif i > 0 or not continued:
                current = None  # another program's command
            if current is None:
                continue
            for w in words:
                m = re.match(r"\[?(--[a-z][a-z0-9-]*)", w)
                if m:
                    found.append((current, m.group(1), line.strip()))
    return found


def test_readme_shows_flags_of_every_command():
    cmds = {c for c, _, _ in readme_flags()}
    assert cmds == set(COMMANDS.values())


@pytest.mark.parametrize("module", sorted(set(COMMANDS.values())))
def test_every_readme_flag_exists(module):
    import importlib

    parser = importlib.import_module(module).get_parser()
    known = {o for a in parser._actions for o in a.option_strings}
    missing = sorted({(f, l) for c, f, l in readme_flags() if c == module and f not in known})
    assert not missing, missing
