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


def test_the_enrolment_commands_work_as_written(tmp_path):
    """The README's enrolment block, run line by line as written: CA_DIR and NODE_DIR stand for real
    directories; the node's commands run with its own passphrase while the CA directory is out of reach."""
    import shlex

    from pki.ca import CertificateAuthority
    from tests.node.enrolment_support import Parties
    from tests.support import PASSPHRASE, PASSPHRASE_TEXT

    readme = (ROOT / "README.md").read_text("utf-8")
    block = re.search(r"^## Node setup: enrolment.*?```sh\n(.*?)```", readme, re.M | re.S).group(1)
    lines = [line for line in block.splitlines() if line.startswith("gwx ")]
    assert len(lines) == 9 and lines[-1] == "gwx node run --dir NODE_DIR"
    hand = tmp_path / "hand-over"
    parties = Parties(tmp_path / "admin" / "ca", PASSPHRASE_TEXT, "the node's own passphrase", hand)
    CertificateAuthority.init_root(parties.ca_dir, "临沂市电子政务CA", PASSPHRASE)
    (hand / "root.crt").parent.mkdir()
    (hand / "root.crt").write_bytes((parties.ca_dir / "root.crt").read_bytes())
    (hand / "UNITS.toml").write_text('[[units]]\ncode = "11371300MB00000011"\nname = "临沂市人民政府办公室"\n', "utf-8")
    places = {"CA_DIR": str(parties.ca_dir), "NODE_DIR": str(tmp_path / "county-a")}

    def here(word: str) -> str:
        return places.get(word) or (str(hand / word) if (hand / word).exists() or word.endswith((".req", ".resp",
                                                                                                  ".pem")) else word)

    for line in lines[:-1]:  # all but `gwx node run`, which would serve until stopped
        args = [here(w) for w in shlex.split(line)[1:]]
        (parties.admin if args[0] == "pki" else parties.operator)(*args)
    assert (tmp_path / "county-a" / "node.toml").exists()
