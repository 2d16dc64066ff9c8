"""Fixtures shared by the whole suite: a real network CA made by our own code (helpers: tests.support).

The session-scoped CA is created once (key generation is the slow part); tests that mutate a CA
(revocations, CRL numbers) make their own with ``make_ca``.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil

import pytest
from hypothesis import settings

from pki.ca import CertificateAuthority
from tests.support import PASSPHRASE

# Property tests judge behaviour, never speed: on a 2-core machine shared with node processes one
# example can take half a second, which hypothesis's default 200 ms deadline would call a failure.
settings.register_profile("gwx", deadline=None)
settings.load_profile("gwx")

# Each xdist worker picks node ports from its own slice (node.localnet.free_port), and so do the
# processes it starts: two workers that each found a port free could otherwise both hand it out.
if os.environ.get("PYTEST_XDIST_WORKER", "").startswith("gw"):
    os.environ["GWX_PORT_SLICE"] = (f"{int(os.environ['PYTEST_XDIST_WORKER'][2:])}"
                                    f"/{int(os.environ.get('PYTEST_XDIST_WORKER_COUNT', '1'))}")


# The plugins the suite relies on, by the names pytest registers them under. `make test` turns plugin
# autoloading off and names them (Makefile's PYTEST_PLUGIN_ARGS): one left out there would be silently
# not loaded — every timeout (pyproject's and @pytest.mark.timeout) a no-op, the property tests
# collected without hypothesis's plugin. Each process (controller and workers) checks at start.
NEEDED_PLUGINS = {"timeout": "pytest-timeout (the timeouts)", "hypothesispytest": "hypothesis's pytest plugin"}


def pytest_configure(config) -> None:
    needed = dict(NEEDED_PLUGINS)
    if any(arg in ("-n", "--numprocesses") or arg.startswith(("-n", "--numprocesses="))
           for arg in map(str, config.invocation_params.args)):
        needed["xdist"] = "pytest-xdist (-n)"
    missing = [f"{name}: {what}" for name, what in needed.items() if not config.pluginmanager.has_plugin(name)]
    if missing:
        raise pytest.UsageError("pytest plugins the suite relies on are not loaded (with "
                                "--disable-plugin-autoload, name each with -p, as the Makefile's "
                                "PYTEST_PLUGIN_ARGS does): " + "; ".join(missing))


@pytest.fixture(scope="session")
def root_ca(tmp_path_factory) -> CertificateAuthority:
    """A root CA shared read-only by the session (do not revoke with it)."""
    return CertificateAuthority.init_root(tmp_path_factory.mktemp("root-ca") / "ca", "临沂市电子政务根CA", PASSPHRASE)


@pytest.fixture(scope="session")
def _root_ca_templates(tmp_path_factory) -> dict[tuple[str, str], CertificateAuthority]:
    return {}


@pytest.fixture
def new_root_ca(_root_ca_templates, tmp_path_factory):
    """``new_root_ca(directory, name)``: a root CA of its own in ``directory``, for a test that changes
    its CA (issues, revokes) but is not about making one: a copy of one made once per test process for
    the name and algorithm. Making a root CA writes five keys (~0.17 s of CPU, 100,000 PBKDF2 rounds
    each); copying and opening it decrypts one (~0.02 s). Tests in one process share its keys, never
    its directory or records."""
    def make(directory, name: str, algorithm: str = "ecdsa-p256-sha256") -> CertificateAuthority:
        key = (name, algorithm)
        if key not in _root_ca_templates:
            _root_ca_templates[key] = CertificateAuthority.init_root(
                tmp_path_factory.mktemp("root-ca-template") / "ca", name, PASSPHRASE, algorithm=algorithm)
        shutil.copytree(_root_ca_templates[key].directory, directory)
        return CertificateAuthority.open(directory, PASSPHRASE)

    return make


@pytest.fixture
def make_ca(tmp_path):
    """Factory for a fresh, private CA (for tests that revoke or need a second network)."""
    counter = iter(range(100))

    def make(name: str = "测试CA", algorithm: str = "ecdsa-p256-sha256",
             now: dt.datetime | None = None) -> CertificateAuthority:
        return CertificateAuthority.init_root(tmp_path / f"ca{next(counter)}", name, PASSPHRASE,
                                              algorithm=algorithm, now=now)

    return make


def pytest_collection_modifyitems(session, config, items) -> None:
    """Modules with slow tests (real node processes, browsers) first, the rest after, each module's
    tests in their order. `make test`'s workers take whole modules in this order (``--dist
    loadscope --no-loadscope-reorder``): the long modules start early, and the many short ones at the
    end keep the cores busy until the last test, instead of one long network module left running
    alone on one core while the other has nothing to do."""
    slow = {item.nodeid.split("::")[0] for item in items if item.get_closest_marker("slow") is not None}
    items.sort(key=lambda item: item.nodeid.split("::")[0] not in slow)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Captured output as UTF-8 can carry it: a test about a file name that is not UTF-8 logs it as
    surrogates, which pytest-xdist cannot send from its worker (the worker would crash)."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, text.encode("utf-8", "backslashreplace").decode("utf-8"))
                       for title, text in report.sections]


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server for this test process (tests/postgres_server.py), started on first use."""
    from tests.postgres_server import PostgresServer

    server = PostgresServer()
    try:
        yield server.start()
    finally:
        server.stop()
