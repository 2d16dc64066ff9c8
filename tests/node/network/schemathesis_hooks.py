"""Schemathesis hooks (SCHEMATHESIS_HOOKS) for the run against a real node: see test_schemathesis.py beside it.

The ``gb32100`` format is the whole unit code rule, check character included, which no pattern
can carry; registering it lets generated "valid" data be valid, so a 400 for a unit code is a
real finding, not the schema's blind spot.
"""

from __future__ import annotations

import schemathesis
from hypothesis import strategies as st

from pki.unit_code import ALPHABET, UNIT_CODE_FORMAT, make_unit_code

_CODES = st.builds(lambda head, division, org: make_unit_code(head + division + org),
                   st.text(st.sampled_from(ALPHABET), min_size=2, max_size=2),
                   st.text(st.sampled_from("0123456789"), min_size=6, max_size=6),
                   st.text(st.sampled_from(ALPHABET), min_size=9, max_size=9))

schemathesis.openapi.format(UNIT_CODE_FORMAT, _CODES)
