"""Real PKI for the package tests: our CA, issued seals, valid metadata (the PDF is node.localnet.notice_pdf).

Built once per session (a CA and a seal cost a few hundred milliseconds). Fakes only for time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest

from exchange_protocol.meta_json import parse_meta
from exchange_protocol.model import DocumentMetadata
from pki import tsa
from pki.ca import CertificateAuthority
from pki.seal_store import SealCredential, issue_seal
from tests.support import PASSPHRASE

UNIT = "91350100M000100Y43"
OTHER_UNIT = "11100000000013127D"
NOW = dt.datetime(2026, 3, 2, 9, 30, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Pki:
    directory: Path
    ca: CertificateAuthority
    seal: SealCredential
    other_seal: SealCredential  # a valid seal of another unit

    @property
    def root(self):
        return self.ca.root_certificate

    @property
    def root_pem(self) -> Path:
        return self.directory / "ca" / "root.crt"

    def timestamper(self, at: dt.datetime = NOW):
        signer = self.ca.tsa_signer()
        return lambda request: tsa.respond(request, signer, at, tsa.random_serial())


def make_pki(directory: Path, algorithm: str | None = None) -> Pki:
    """``algorithm``: the root's (``"sm2-sm3"``: a 国密 network, its seals and TSA SM2 too)."""
    now = NOW - dt.timedelta(days=1)
    ca = CertificateAuthority.init_root(directory / "ca", "测试网络根CA", PASSPHRASE,
                                        **({"algorithm": algorithm} if algorithm else {}), now=now)
    seal = issue_seal(ca, UNIT, "某某市人民政府", directory / "seal", PASSPHRASE, now=now)
    other = issue_seal(ca, OTHER_UNIT, "某某县财政局", directory / "seal2", PASSPHRASE, now=now)
    return Pki(directory, ca, seal, other)


@pytest.fixture(scope="session")
def pki_env(tmp_path_factory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pkg-pki"))


def make_meta(**overrides) -> DocumentMetadata:
    """Valid metadata with a fixed 公文标识 (``id=None`` for none)."""
    obj = {"kind": "通知", "title": "关于做好2026年春季安全生产工作的通知", "doc_number": "某政发〔2026〕3号",
           "issuers": [UNIT], "to": [OTHER_UNIT], "written_on": "2026-03-02",
           "id": "019cade2-11c0-7640-8aa8-958c96f2b6f2"}
    obj.update(overrides)
    return parse_meta(obj).metadata


def with_forced_id(meta: DocumentMetadata, doc_id: str) -> DocumentMetadata:
    """``meta`` carrying an id the model refuses — what an old or hostile peer could still seal."""
    forged = dataclasses.replace(meta)
    object.__setattr__(forged, "id", doc_id)  # past the frozen dataclass's check, on purpose
    return forged
