"""A document package on a 国密 network: the PDF body sealed (PAdES) with the unit's SM2 seal key — an SM3
digest of the signed byte ranges, an SM2-with-SM3 signature — the manifest signed SM2 (GB/T 35275 CMS),
the time-stamp SM2; verified end to end by ours, and the PDF seal checked without pyHanko or our code:
gmalg's SM3 over the /ByteRange bytes equals the CMS messageDigest, `openssl dgst -sm3` and gmalg verify
the signature. A changed PDF, another network's root, a revoked seal: refused with their codes."""

from __future__ import annotations

import datetime as dt
import io
import re
import zipfile

import gmalg
import pytest
from asn1crypto import cms as acms
from cryptography.hazmat.primitives import serialization

from exchange_protocol.errors import PackageSealInvalid
from exchange_protocol.manifest import SIGNATURE_NAME, TIMESTAMP_NAME
from exchange_protocol.package import build_package
from exchange_protocol.package_verify import verify_package
from exchange_protocol.pades import validate_sealed_pdf
from node.localnet import notice_pdf
from pki import tsa
from pki.ca import CertificateAuthority
from pki.crl import build_crl
from pki.revocation import CrlChecker
from pki.seal_store import issue_seal
from pki.x509_sm2 import public_key_of
from tests.exchange_protocol.package_fixtures import NOW, UNIT, make_meta
from tests.pki.sm_support import openssl_verifies_signature, signature_rs
from tests.support import PASSPHRASE


@pytest.fixture(scope="module")
def sm(tmp_path_factory):
    base = tmp_path_factory.mktemp("sm-package")
    now = NOW - dt.timedelta(days=1)
    ca = CertificateAuthority.init_root(base / "ca", "国密测试网络根CA", PASSPHRASE, algorithm="sm2-sm3", now=now)
    seal = issue_seal(ca, UNIT, "某某市人民政府", base / "seal", PASSPHRASE, now=now)
    signer = ca.tsa_signer()
    out = io.BytesIO()
    build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=seal, at=NOW,
                  timestamper=lambda request: tsa.respond(request, signer, NOW, tsa.random_serial()))
    return ca, seal, out.getvalue()


def _member(package: bytes, name: str) -> bytes:
    with zipfile.ZipFile(io.BytesIO(package)) as zf:
        return zf.read(name)


def _with_member(package: bytes, name: str, data: bytes) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(package)) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            dst.writestr(info, data if info.filename == name else src.read(info.filename))
    return out.getvalue()


def _byte_range(pdf: bytes) -> tuple[int, int, int, int]:
    """The last signature's /ByteRange [start, length, start, length], read with a regular expression."""
    found = re.findall(rb"/ByteRange\s*\[\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)", pdf)[-1]
    return tuple(int(v) for v in found)  # type: ignore[return-value]


def _failures(report) -> dict[str, str | None]:
    return {c.name: c.code for c in report.failures}


def test_a_package_sealed_with_an_sm2_seal_verifies_end_to_end(sm):
    ca, _, package = sm
    report = verify_package(io.BytesIO(package), [ca.root_certificate], NOW,
                            revocation=CrlChecker([build_crl(ca, NOW)]))
    assert report.ok, report.failures


def test_the_pdf_seal_is_sm2_over_the_byte_ranges_as_tools_we_did_not_write_see_it(sm, tmp_path):
    _, seal, package = sm
    pdf = _member(package, "body.pdf")
    a, b, c, d = _byte_range(pdf)
    contents = bytes.fromhex(pdf[a + b + 1:c - 1].decode())  # the hex string between < and >
    info = acms.ContentInfo.load(contents, strict=False)
    si = info["content"]["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
    assert si["signature_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.501"
    sm3 = gmalg.SM3()
    sm3.update(pdf[a:a + b] + pdf[c:c + d])
    attrs = {x["type"].dotted: x["values"][0] for x in si["signed_attrs"]}
    assert attrs["1.2.840.113549.1.9.4"].native == sm3.value()
    signed = b"\x31" + si["signed_attrs"].dump()[1:]
    signature = si["signature"].native
    pub = public_key_of(seal.certificate)
    done = openssl_verifies_signature(pub.public_bytes(serialization.Encoding.PEM), signed, signature, tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = (v.to_bytes(32, "big") for v in signature_rs(signature))
    assert gmalg.SM2(pk=pub.point(), uid=b"1234567812345678").verify(signed, r, s)


def test_a_changed_pdf_another_networks_root_and_a_revoked_seal_are_refused(sm, tmp_path):
    ca, seal, package = sm
    pdf = _member(package, "body.pdf")
    at = _byte_range(pdf)[1] // 2  # inside the first signed range: the document before its seal
    changed_pdf = pdf[:at] + bytes([pdf[at] ^ 1]) + pdf[at + 1:]
    with pytest.raises(PackageSealInvalid) as err:
        validate_sealed_pdf(changed_pdf, [ca.root_certificate], NOW)
    assert err.value.details.get("intact") is False
    report = verify_package(io.BytesIO(_with_member(package, "body.pdf", changed_pdf)), [ca.root_certificate], NOW)
    assert _failures(report) == {"digests": "PKG_DIGEST_MISMATCH"}
    with pytest.raises(PackageSealInvalid):  # bytes after the seal: not covered
        validate_sealed_pdf(pdf + b"\n% appended\n", [ca.root_certificate], NOW)
    other = CertificateAuthority.init_root(tmp_path / "other", "另一个国密根", PASSPHRASE, algorithm="sm2-sm3",
                                           now=NOW - dt.timedelta(days=1))
    assert _failures(verify_package(io.BytesIO(package), [other.root_certificate], NOW)) == {
        "manifest_signature": "PKI_CERT_UNTRUSTED", "pdf_seal": "PKG_PDF_SEAL_INVALID",
        "seal": "SEAL_MAKER_UNTRUSTED", "timestamp": "TSA_UNTRUSTED"}
    ca.revoke(seal.certificate, "key_compromise")
    later = NOW + dt.timedelta(hours=1)
    report = verify_package(io.BytesIO(package), [ca.root_certificate], later,
                            revocation=CrlChecker([build_crl(ca, later)]))
    assert _failures(report) == {"manifest_signature": "PKI_CERT_REVOKED", "pdf_seal": "PKI_CERT_REVOKED",
                                 "seal": "SEAL_REVOKED"}


def test_the_time_stamp_imprint_is_sm3_of_the_signature_value_and_a_sha256_one_is_refused(sm):
    """On a 国密 network the package's time stamp binds the signature by SM3 (`openssl dgst -sm3` over
    the SignerInfo's signature value); a token over its SHA-256, from the same TSA, is for other data."""
    from exchange_protocol.package import signature_value
    from tests.support import run_openssl

    ca, _, package = sm
    signature, token = _member(package, SIGNATURE_NAME), _member(package, TIMESTAMP_NAME)
    imprint = tsa.verify_token(token, signature_value(signature), trust_roots=[ca.root_certificate])
    sm3_hex = run_openssl("dgst", "-sm3", "-r", input=signature_value(signature)).stdout.decode().split()[0]
    assert imprint.hash_name == "sm3" and imprint.message_imprint.hex() == sm3_hex
    tst = acms.ContentInfo.load(token)["content"]["encap_content_info"]["content"].parsed
    assert tst["message_imprint"]["hash_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"

    request = tsa.make_request(signature_value(signature), hash_name="sha256")
    sha_token = tsa.token_from_response(tsa.respond(request, ca.tsa_signer(), NOW, tsa.random_serial()))
    # (The seal may have been revoked by an earlier test of this module: only the time stamp is judged here.)
    held = verify_package(io.BytesIO(package), [ca.root_certificate], NOW)
    report = verify_package(io.BytesIO(_with_member(package, TIMESTAMP_NAME, sha_token)), [ca.root_certificate], NOW)
    assert "timestamp" not in _failures(held) and _failures(report)["timestamp"] == "TSA_DIGEST_MISMATCH"


def test_the_manifest_lists_every_file_by_sm3_and_one_listing_sha256_under_an_sm2_signature_is_refused(sm):
    """The manifest an SM2 seal signs names each file's SM3 (`openssl dgst -sm3` over the member); a
    manifest listing SHA-256 digests, signed by the same seal, is not the network's profile."""
    import dataclasses
    import hashlib

    from exchange_protocol.manifest import MANIFEST_NAME, Manifest, parse_manifest
    from pki import cms
    from tests.support import run_openssl

    ca, seal, package = sm
    manifest = parse_manifest(_member(package, MANIFEST_NAME))
    assert manifest.algorithm == "sm3" and b'"sha256"' not in _member(package, MANIFEST_NAME)
    for entry in manifest.entries:
        member = _member(package, entry.path)
        assert entry.digest == run_openssl("dgst", "-sm3", "-r", input=member).stdout.decode().split()[0]

    sha = Manifest.of(dataclasses.replace(e, digest=hashlib.sha256(_member(package, e.path)).hexdigest(),
                                          algorithm="sha256") for e in manifest.entries)
    signature = cms.sign_detached(sha.to_bytes(), seal.signer)
    forged = _with_member(_with_member(package, MANIFEST_NAME, sha.to_bytes()), SIGNATURE_NAME, signature)
    report = verify_package(io.BytesIO(forged), [ca.root_certificate], NOW)
    assert _failures(report)["manifest_signature"] == "PKG_BAD_MANIFEST"
