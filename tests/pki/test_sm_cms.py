"""CMS SignedData by an SM2 signer, with GB/T 35275's identifiers. OpenSSL 3.0's `openssl cms` cannot
make or check SM2 CMS, so it is checked piece by piece by tools we did not write: `openssl asn1parse`
reads the structure and the OIDs, and the signature over the signed attributes — the bytes
asn1parse points at — is checked by `openssl dgst -sm3` with the default id and by gmalg."""

from __future__ import annotations

import datetime as dt
import re

import gmalg
import pytest
from cryptography.hazmat.primitives import serialization

from pki.algorithms import SM2_SM3
from pki.ca import CertificateAuthority
from pki.cms import sign_detached, verify_detached
from pki.errors import CmsBadSignature, CmsDigestMismatch
from pki.signer import Signer, SoftwareSigner
from pki.sm2 import DEFAULT_ID, Sm2PrivateKey
from pki.sm3_sm4 import sm3
from pki.trust import Purpose
from pki.x509_sm2 import public_key_of
from tests.support import PASSPHRASE

from .sm_support import openssl, openssl_verifies_signature, signature_rs

CONTENT = "关于做好2027年元旦春节期间有关工作的通知".encode() * 50


@pytest.fixture(scope="module")
def sm(tmp_path_factory):
    base = tmp_path_factory.mktemp("sm-cms")
    ca = CertificateAuthority.init_root(base / "ca", "国密CMS测试CA", PASSPHRASE, algorithm="sm2-sm3")
    node = ca.issue_node("n1", "n1.example", base / "n1", PASSPHRASE)
    from pki.keystore import read_private_key
    signer = SoftwareSigner(read_private_key(base / "n1" / "sign.key", PASSPHRASE), node.signing_certificate)
    return ca, signer


def _asn1parse(der: bytes, tmp_path) -> list[tuple[int, int, int, str]]:
    (tmp_path / "cms.der").write_bytes(der)
    out = openssl("asn1parse", "-inform", "DER", "-in", tmp_path / "cms.der").stdout.decode()
    rows = []
    for line in out.splitlines():
        m = re.match(r"\s*(\d+):d=(\d+)\s+hl=(\d+)\s+l=\s*(\d+)\s+\w+:\s*(.*)", line)
        if m:
            offset, depth, hl, length, rest = m.groups()
            rows.append((int(offset), int(depth), int(hl) + int(length), rest.strip()))
    return rows


def test_sm2_cms_carries_the_gbt_35275_identifiers_as_openssl_reads_them(sm, tmp_path):
    _, signer = sm
    der = sign_detached(CONTENT, signer, signing_time=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    rows = _asn1parse(der, tmp_path)
    text = "\n".join(r[3] for r in rows)
    assert rows[1][3].endswith(":1.2.156.10197.6.1.4.2.2")  # ContentInfo: GB/T 35275 signedData
    assert ":1.2.156.10197.6.1.4.2.1" in text  # eContentType and the contentType attribute: GB/T data
    assert ":sm3" in text and ":1.2.156.10197.1.301.1" in text
    assert "pkcs7-signedData" not in text and "sha256" not in text
    # the messageDigest attribute is SM3 of the content, as openssl computes it
    (tmp_path / "content").write_bytes(CONTENT)
    digest = openssl("dgst", "-sm3", "-r", tmp_path / "content").stdout.split()[0].decode().upper()
    assert f"[HEX DUMP]:{digest}" in text


def test_openssl_dgst_and_gmalg_verify_the_signature_over_the_signed_attributes(sm, tmp_path):
    _, signer = sm
    der = sign_detached(CONTENT, signer, signing_time=dt.datetime(2026, 12, 1, tzinfo=dt.UTC))
    rows = _asn1parse(der, tmp_path)
    # SignerInfo fields sit at depth 5: the [0] signed attributes, and the signature's OCTET STRING last
    attrs = next(r for r in rows if r[1] == 5 and r[3] == "cont [ 0 ]" and rows.index(r) > 10)
    signed = b"\x31" + der[attrs[0] + 1:attrs[0] + attrs[2]]  # signed as a SET (RFC 5652 §5.4)
    sig_row = [r for r in rows if r[1] == 5 and r[3].startswith("OCTET STRING")][-1]
    sig_der = der[sig_row[0]:sig_row[0] + sig_row[2]]
    signature = sig_der[2:] if sig_der[1] < 0x80 else sig_der[3:]
    pub = public_key_of(signer.certificate)
    done = openssl_verifies_signature(pub.public_bytes(serialization.Encoding.PEM), signed, signature, tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = signature_rs(signature)
    assert gmalg.SM2(pk=pub.point(), uid=DEFAULT_ID).verify(signed, r.to_bytes(32, "big"), s.to_bytes(32, "big"))


def test_we_verify_it_with_the_path_and_refuse_changes(sm):
    ca, signer = sm
    now = dt.datetime.now(dt.UTC)
    der = sign_detached(CONTENT, signer)
    checked = verify_detached(der, CONTENT, trust_roots=[ca.root_certificate], now=now, purpose=Purpose.SIGNING,
                              require_signing_cert_v2=True)
    assert checked.digest_algorithm == "sm3" and checked.message_digest == sm3(CONTENT)
    assert checked.content_type == "1.2.156.10197.6.1.4.2.1"
    assert checked.path[-1] == ca.root_certificate
    with pytest.raises(CmsDigestMismatch):
        verify_detached(der, CONTENT + b".")
    flipped = bytearray(der)
    flipped[-3] ^= 1  # inside the SM2 signature
    with pytest.raises(CmsBadSignature):
        verify_detached(bytes(flipped), CONTENT)


class _Impostor(Signer):
    """Names one certificate and signs with another SM2 key (what a forger would send)."""

    def __init__(self, certificate) -> None:
        self._key, self._certificate = Sm2PrivateKey.generate(), certificate

    algorithm = SM2_SM3
    public_key = property(lambda self: self._key.public_key())
    certificate = property(lambda self: self._certificate)

    def sign(self, data: bytes) -> bytes:
        return self._key.sign(data)


def test_a_signature_by_another_sm2_key_under_the_same_certificate_is_refused(sm):
    _, signer = sm
    with pytest.raises(CmsBadSignature):
        verify_detached(sign_detached(CONTENT, _Impostor(signer.certificate)), CONTENT)


def test_encapsulated_and_digest_forms(sm):
    _, signer = sm
    der = sign_detached(CONTENT, signer, encapsulate=True)
    assert verify_detached(der).content == CONTENT
    der = sign_detached(None, signer, digest=sm3(CONTENT))
    assert verify_detached(der, CONTENT).message_digest == sm3(CONTENT)
