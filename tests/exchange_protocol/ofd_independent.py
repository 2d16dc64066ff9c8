"""A second verifier of a sealed OFD, written in the tests from the standards' text, sharing no code with
``exchange_protocol`` or ``pki``: the ZIP by ``zipfile``, the XML by ``minidom``, the ASN.1 by asn1tools
compiled from GB/T 38540's module (the text file tests/pki/gbt38540.asn), SM3 and SM2 by gmalg (pure Python),
the certificates' public keys by the ``openssl`` command — and for the international profile (the same
layout with SHA-256 and ECDSA P-256) SHA-256 by hashlib and the signatures by ``openssl dgst -verify``.

It follows GB/T 38540 §8 for a seal in an OFD: Signatures.xml → Signature.xml; each Reference's file
digested with the CheckMethod and compared; SignedValue.dat decoded as SES_Signature; dataHash = SM3 of
Signature.xml; the SES_Signature's signature over DER(TBS_Sign) verifies with its certificate (SM2, the
default id); the seal's signedValue over DER(SES_SealInfo) verifies with the maker's certificate; the
signer certificate is in the seal's certList; Seal.esl is the seal inside; timeInfo lies in the seal's
validity; the StampAnnot's page is one the document lists. (Not checked here: the chain to a root and
revocation, which are pki's and openssl's, not the OFD layout's.) Returns what it saw, or
raises AssertionError naming the first thing that fails.
"""

from __future__ import annotations

import base64
import hashlib
import io
import subprocess
import tempfile
import zipfile
from pathlib import Path
from xml.dom import minidom

import asn1tools
import gmalg

NS = "http://www.ofdspec.org/2016"
SM3_OID, SM2_SM3_OID = "1.2.156.10197.1.401", "1.2.156.10197.1.501"
SHA256_OID, ECDSA_SHA256_OID = "2.16.840.1.101.3.4.2.1", "1.2.840.10045.4.3.2"
DEFAULT_ID = b"1234567812345678"
_SPEC = (Path(__file__).parents[1] / "pki" / "gbt38540.asn").read_text(encoding="utf-8")
_CODEC = asn1tools.compile_string(_SPEC.replace("CERTLIST", "CertInfoList"), "der")


def _sm3(data: bytes) -> bytes:
    h = gmalg.SM3()
    h.update(data)
    return h.value()


def _sm2_point(cert_der: bytes) -> bytes:
    """The SM2 public key (04 || x || y) of a DER certificate, as openssl prints it."""
    pem = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-pubkey"], input=cert_der,
                         capture_output=True, check=True).stdout
    spki = base64.b64decode(b"".join(line for line in pem.splitlines() if not line.startswith(b"-----")))
    return spki[-65:]


def _ecdsa_verifies(cert_der: bytes, data: bytes, signature_der: bytes) -> bool:
    with tempfile.TemporaryDirectory() as where:
        d = Path(where)
        (d / "cert.der").write_bytes(cert_der)
        (d / "data").write_bytes(data)
        (d / "sig").write_bytes(signature_der)
        pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-in", str(d / "cert.der"), "-noout", "-pubkey"],
                             capture_output=True, check=True).stdout
        (d / "pub.pem").write_bytes(pub)
        done = subprocess.run(["openssl", "dgst", "-sha256", "-verify", str(d / "pub.pem"), "-signature",
                               str(d / "sig"), str(d / "data")], capture_output=True)
        return done.returncode == 0 and b"Verified OK" in done.stdout


def _verifies(alg_oid: str, cert_der: bytes, data: bytes, signature_der: bytes) -> bool:
    if alg_oid == ECDSA_SHA256_OID:
        return _ecdsa_verifies(cert_der, data, signature_der)
    assert alg_oid == SM2_SM3_OID, alg_oid
    return _sm2_verifies(cert_der, data, signature_der)


def _sm2_verifies(cert_der: bytes, data: bytes, signature_der: bytes) -> bool:
    rs = _CODEC_RS.decode("RS", signature_der)
    return gmalg.SM2(pk=_sm2_point(cert_der), uid=DEFAULT_ID).verify(
        data, rs["r"].to_bytes(32, "big"), rs["s"].to_bytes(32, "big"))


_CODEC_RS = asn1tools.compile_string("S DEFINITIONS ::= BEGIN RS ::= SEQUENCE { r INTEGER, s INTEGER } END", "der")


def _loc(referrer: str, loc: str) -> str:
    loc = loc.strip()
    if loc.startswith("/"):
        return loc.lstrip("/")
    base = referrer.rsplit("/", 1)[0] if "/" in referrer else ""
    return f"{base}/{loc}" if base else loc


def _text(node, tag: str) -> str:
    return node.getElementsByTagNameNS(NS, tag)[0].firstChild.nodeValue


def check_sealed_ofd(ofd: bytes, *, list_protected: bool = True) -> dict:
    """``list_protected=False`` for a producer that leaves Signatures.xml out of the References (ContinueSign)."""
    with zipfile.ZipFile(io.BytesIO(ofd)) as zf:
        files = {n: zf.read(n) for n in zf.namelist() if not n.endswith("/")}
    ofd_xml = minidom.parseString(files["OFD.xml"])
    signatures_loc = _loc("OFD.xml", _text(ofd_xml, "Signatures"))
    entries = minidom.parseString(files[signatures_loc]).getElementsByTagNameNS(NS, "Signature")
    assert len(entries) == 1, "one seal expected"
    sig_path = _loc(signatures_loc, entries[0].getAttribute("BaseLoc"))
    signature_xml = files[sig_path]
    sig = minidom.parseString(signature_xml)
    alg = _text(sig, "SignatureMethod")
    digest = (lambda b: hashlib.sha256(b).digest()) if alg == ECDSA_SHA256_OID else _sm3
    refs = sig.getElementsByTagNameNS(NS, "References")[0]
    assert refs.getAttribute("CheckMethod") in ((SHA256_OID,) if alg == ECDSA_SHA256_OID else (SM3_OID, "SM3"))
    covered = set()
    for ref in refs.getElementsByTagNameNS(NS, "Reference"):
        path = _loc(sig_path, ref.getAttribute("FileRef"))
        expected = base64.b64decode(_text(ref, "CheckValue"))
        assert digest(files[path]) == expected, f"{path}: digest differs from its CheckValue"
        covered.add(path)
    signed_value_path = _loc(sig_path, _text(sig, "SignedValue"))
    ses = _CODEC.decode("SES-Signature", files[signed_value_path])
    tbs = ses["toSign"]
    assert tbs["version"] == 4
    assert tbs["dataHash"][0] == digest(signature_xml), "dataHash is not the digest of Signature.xml"
    assert tbs["propertyInfo"].lstrip("/") == sig_path
    assert ses["signatureAlgID"] == alg
    assert _verifies(alg, ses["cert"], _CODEC.encode("TBS-Sign", tbs), ses["signature"][0]), "SES signature"
    seal = tbs["eseal"]
    seal_der = _CODEC.encode("SESeal", seal)
    seal_loc = sig.getElementsByTagNameNS(NS, "Seal")
    if seal_loc:
        assert files[_loc(sig_path, _text(seal_loc[0], "BaseLoc"))] == seal_der, "Seal.esl is another seal"
    info = seal["eSealInfo"]
    assert _verifies(seal["signAlgID"], seal["cert"], _CODEC.encode("SES-SealInfo", info), seal["signedValue"][0]), \
        "the seal maker's signature"
    cert_list = info["property"]["certList"]
    assert ses["cert"] in cert_list, "the signer certificate is not in the seal's certList"
    validity = info["property"]
    assert validity["validStart"] <= tbs["timeInfo"] <= validity["validEnd"], "timeInfo outside the seal's validity"
    stamp = sig.getElementsByTagNameNS(NS, "StampAnnot")[0]
    doc_root = _loc("OFD.xml", _text(ofd_xml, "DocRoot"))
    page_ids = {p.getAttribute("ID") for p in minidom.parseString(files[doc_root]).getElementsByTagNameNS(NS, "Page")}
    assert stamp.getAttribute("PageRef") in page_ids, "the StampAnnot names a page the document does not have"
    uncovered = set(files) - covered - {sig_path, signed_value_path} - (set() if list_protected else {signatures_loc})
    assert not uncovered, f"files no reference covers: {sorted(uncovered)}"
    return {"seal_name": info["property"]["name"], "picture_type": info["picture"]["type"],
            "page": int(stamp.getAttribute("PageRef")), "boundary": stamp.getAttribute("Boundary"),
            "references": len(covered)}
