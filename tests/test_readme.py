"""The README's first steps say what the Makefile does: as many commands as the heading says, each a target."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NUMBERS = {"one": 1, "two": 2, "three": 3, "four": 4, "five": 5}


def test_the_commands_heading_counts_the_commands_it_lists_and_each_is_a_make_target():
    readme = (ROOT / "README.md").read_text("utf-8")
    heading = re.search(r"^## The (\w+) commands\n+```sh\n(.*?)```", readme, re.M | re.S)
    assert heading, "README has no '## The N commands' section"
    listed = re.findall(r"^make ([\w-]+)", heading.group(2), re.M)
    assert NUMBERS[heading.group(1)] == len(listed), (heading.group(1), listed)
    targets = set(re.findall(r"^([\w-]+):", (ROOT / "Makefile").read_text("utf-8"), re.M))
    assert set(listed) <= targets
