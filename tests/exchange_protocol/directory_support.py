"""A small network directory over the envelope tests' real network (root CA, intermediate, nodes a, b,
c — c under the intermediate — and a rogue CA), signed by the root CA's directory signer."""

from __future__ import annotations

import base64
import dataclasses
import datetime as dt
from typing import Any

from exchange_protocol.canonical import canonical_json
from exchange_protocol.directory import Directory, NodeEntry, UnitEntry
from exchange_protocol.directory_signing import SIGNED_FORMAT, sign_directory
from pki import cms, directory_signer
from pki.signer import Signer
from pki.unit_code import make_unit_code
from tests.exchange_protocol.envelope_support import NOW, UNIT_A, UNIT_B, network

CITY, COUNTY_B, COUNTY_C = UNIT_A, UNIT_B, make_unit_code("11430700MB0000001")
VILLAGE = make_unit_code("11430700MB0000002")


def node_entry(node_id: str, parent: str | None, level: str) -> NodeEntry:
    node = network().nodes[node_id]
    creds = node.creds
    return NodeEntry(node_id, (f"https://{node_id}.example:7443",), level, parent, creds.tls_certificate,
                     creds.signing_certificate, creds.encryption_certificate, chain=tuple(node.sender.extra_certs))


def directory(version: int = 1, **changes: Any) -> Directory:
    value = Directory(
        "测试网", version, NOW - dt.timedelta(hours=1), NOW + dt.timedelta(days=1), NOW + dt.timedelta(days=7),
        (node_entry("a", None, "city"), node_entry("b", "a", "county"), node_entry("c", "a", "county")),
        (UnitEntry(CITY, "市政府办公室", "city", "a"),
         UnitEntry(COUNTY_B, "乙县政府办公室", "county", "b", parent=None, supervisor=CITY),
         UnitEntry(COUNTY_C, "丙县政府办公室", "county", "c", supervisor=CITY),
         UnitEntry(VILLAGE, "某村委会", "village", "b", parent=COUNTY_B)),
        links=(("b", "c"),), crl_urls=("https://a.example:7443/crl.pem",), ocsp_urls=())
    return dataclasses.replace(value, **changes)


def root_signer():
    return directory_signer.from_ca(network().root)


def signed(version: int = 1, signer=None, **changes: Any) -> bytes:
    s = signer or root_signer()
    return sign_directory(directory(version, **changes), s.signer, s.chain)


def signed_json(content: Any, signer: Signer | None = None, chain=()) -> bytes:
    """Any JSON value signed as a directory (what a hand-made, ill-formed directory looks like)."""
    signer = signer or root_signer().signer
    signature = cms.sign_detached(canonical_json(content), signer, extra_certs=chain)
    return canonical_json({"format": SIGNED_FORMAT, "directory": content,
                           "signature": base64.b64encode(signature).decode()})
