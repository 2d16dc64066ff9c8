"""The pki tests' clock: a module's ``NOW`` taken from the wall clock is retaken when the module starts.

Several modules judge at a module-level ``NOW = dt.datetime.now(...)``, computed when pytest imports
them at collection, while their fixtures issue certificates at the wall clock when they run (backdated
five minutes, ``pki.profiles.BACKDATE``). In the whole suite the network tests run first and take minutes,
so by the time such a module runs its ``NOW`` can lie before its own certificates' notBefore. Fixed
dates (``NOW = dt.datetime(2026, 3, 2, …)``) are left alone: only a ``NOW`` within an hour of the
clock is one read from it.
"""

from __future__ import annotations

import datetime as dt

import pytest


@pytest.fixture(scope="module", autouse=True)
def _now_when_the_module_starts(request):
    module = request.module
    taken = getattr(module, "NOW", None)
    now = dt.datetime.now(dt.UTC)
    if isinstance(taken, dt.datetime) and taken.tzinfo is not None and abs(now - taken) < dt.timedelta(hours=1):
        module.NOW = now.replace(microsecond=0) if taken.microsecond == 0 else now
    yield
