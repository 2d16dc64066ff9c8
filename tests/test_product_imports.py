"""What ships imports nothing from tests/: node/, pki/, exchange_protocol/, adapters/ and deploy/ (the
demo an operator runs, its examples) work in an installation that has no tests directory. The tests'
helpers stay theirs — some on purpose share no code with the product (the independent OFD verifier).
Checked on the source with ast, so modules added later are covered. bench/ is a developer's tool and
may use the tests' networks."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support import absolute_imports

REPO = Path(__file__).resolve().parents[1]
SHIPPED = ("node", "pki", "exchange_protocol", "adapters", "deploy")


def imports_of_tests(source: str, filename: str) -> list[str]:
    return [f"{filename}:{line}: {name}" for line, name in absolute_imports(ast.parse(source, filename))
            if name.split(".")[0] == "tests"]


def shipped_modules() -> list[Path]:
    return sorted(p for package in SHIPPED for p in (REPO / package).rglob("*.py"))


def test_the_walk_sees_the_demo_and_the_packages() -> None:
    names = {str(p.relative_to(REPO)) for p in shipped_modules()}
    assert {"deploy/demo.py", "deploy/sample_ofd.py", "node/localnet.py", "pki/ca.py"} <= names


def test_no_shipped_module_imports_from_tests() -> None:
    found = [hit for path in shipped_modules()
             for hit in imports_of_tests(path.read_text(encoding="utf-8"), str(path.relative_to(REPO)))]
    assert found == []


@pytest.mark.parametrize("source", [
    "def body():\n    from tests.exchange_protocol.ofd_fixtures import make_ofd\n",  # what the demo did
    "import tests.support as support",
])
def test_the_check_catches_an_import_from_tests(source: str) -> None:
    assert imports_of_tests(source, "x.py")


def test_the_check_allows_the_rest() -> None:
    assert imports_of_tests("from deploy.sample_ofd import notice_ofd\nimport testslike\nfrom . import tests\n",
                            "x.py") == []
