"""Helpers for the 国密 tests: the standards' known-answer values, and conversions between our DER
encodings and the raw forms the independent SM2 implementation (gmalg, test-only) speaks."""

from __future__ import annotations

import subprocess
from pathlib import Path

from asn1crypto import core, keys

from pki.sm2 import CURVE_OID, Sm2PrivateKey
from tests.support import run_openssl

# Known answers on the recommended curve (sm2p256v1) from OpenSSL's test/sm2_internal_test.c — that is
# their source; the standard's own printed examples (GB/T 32918 parts 2 and 4, Annex A) use the Fp-256
# *test* curve and the id ALICE123@YAHOO.COM, so they are not these. Key, fixed nonce, the signature of
# "message digest" with the default id, and the encryption of "encryption standard" with that nonce;
# gmalg (test_sm2.py) reproduces them independently, a cross-check rather than provenance.
KAT_PRIVATE = bytes.fromhex("3945208F7B2144B13F36E38AC6D39F95889393692860B51A42FB81EF4DF7C5B8")
KAT_PUBLIC = bytes.fromhex("04"
                           "09F9DF311E5421A150DD7D161E4BC5C672179FAD1833FC076BB08FF356F35020"
                           "CCEA490CE26775A52DC6EA718CC1AA600AED05FBF35E084A6632F6072DA9AD13")
KAT_NONCE = int("59276E27D506861A16680F3AD9C02DCCEF3CC1FA3CDBE4CE6D54B80DEAC1BC21", 16)
KAT_SIGNED = b"message digest"
KAT_R = int("F5A03B0648D2C4630EEAC513E1BB81A15944DA3827D5B74143AC7EACEEE720B3", 16)
KAT_S = int("B1B6AA29DF212FD8763182BC0D421CA1BB9038FD1F7F42D4840B69C485BBC1AA", 16)
KAT_PLAINTEXT = b"encryption standard"
KAT_C1 = bytes.fromhex("04"
                       "04EBFC718E8D1798620432268E77FEB6415E2EDE0E073C0F4F640ECD2E149A73"
                       "E858F9D81E5430A57B36DAAB8F950A3C64E6EE6A63094D99283AFF767E124DF0")
KAT_C3 = bytes.fromhex("59983C18F809E262923C53AEC295D30383B54E39D609D160AFCB1908D0BD8766")
KAT_C2 = bytes.fromhex("21886CA989CA9C7D58087307CA93092D651EFA")

# OpenSSL 3.0's verify uses an empty SM2 id unless told the default one, and `-vfyopt distid:` reaches only
# the certificate being verified, not the CAs above it, nor a CRL: so each link of a chain is verified
# on its own (the issuer as a partial-chain anchor), and the root's and CRLs' signatures by openssl dgst.
VFYOPT = ["-vfyopt", "distid:1234567812345678"]


class _Sm2Cipher(core.Sequence):
    _fields = [("x", core.Integer), ("y", core.Integer), ("hash", core.OctetString),
               ("ciphertext", core.OctetString)]


class _RS(core.Sequence):
    _fields = [("r", core.Integer), ("s", core.Integer)]


def signature_der(r: int, s: int) -> bytes:
    return _RS({"r": r, "s": s}).dump()


def signature_rs(der: bytes) -> tuple[int, int]:
    rs = _RS.load(der)
    return rs["r"].native, rs["s"].native


def ciphertext_der(c1: bytes, c3: bytes, c2: bytes) -> bytes:
    """GM/T 0009 DER from raw C1 (04 || x || y), C3, C2."""
    return _Sm2Cipher({"x": int.from_bytes(c1[1:33], "big"), "y": int.from_bytes(c1[33:65], "big"),
                       "hash": c3, "ciphertext": c2}).dump()


def ciphertext_raw(der: bytes) -> bytes:
    """Raw C1 || C3 || C2 from GM/T 0009 DER (gmalg's form)."""
    c = _Sm2Cipher.load(der)
    return (b"\x04" + c["x"].native.to_bytes(32, "big") + c["y"].native.to_bytes(32, "big")
            + c["hash"].native + c["ciphertext"].native)


def private_key_from_scalar(scalar: bytes, point: bytes) -> Sm2PrivateKey:
    """A key from the standard's numbers: PKCS#8 around an ECPrivateKey on the SM2 curve."""
    ec_key = keys.ECPrivateKey({"version": "ecPrivkeyVer1", "private_key": int.from_bytes(scalar, "big"),
                                "public_key": point})
    pkcs8 = keys.PrivateKeyInfo({
        "version": 0,
        "private_key_algorithm": {"algorithm": "ec",
                                  "parameters": keys.ECDomainParameters(name="named", value=CURVE_OID)},
        "private_key": ec_key})
    return Sm2PrivateKey.from_der(pkcs8.dump())


def openssl(*args: str | Path) -> subprocess.CompletedProcess:
    """The system openssl, its failure left to the test to judge (some tests expect a refusal)."""
    return run_openssl(*args, check=False)


def openssl_verifies_link(cert_file: Path, issuer_file: Path, *extra: str) -> subprocess.CompletedProcess:
    """`openssl verify` of one certificate against its issuer (given as a partial-chain anchor)."""
    return openssl("verify", *VFYOPT, "-partial_chain", "-CAfile", str(issuer_file), *extra, str(cert_file))


def openssl_verifies_signature(public_key_pem: bytes, signed: bytes, signature: bytes,
                               workdir: Path) -> subprocess.CompletedProcess:
    """`openssl dgst -sm3 -verify` with the default distinguishing id over ``signed``."""
    (workdir / "dgst.pub").write_bytes(public_key_pem)
    (workdir / "dgst.data").write_bytes(signed)
    (workdir / "dgst.sig").write_bytes(signature)
    return openssl("dgst", "-sm3", "-verify", workdir / "dgst.pub", "-sigopt", "distid:1234567812345678",
                   "-signature", workdir / "dgst.sig", workdir / "dgst.data")


def openssl_checks_gbt_cms(der: bytes, content: bytes | None, workdir: Path) -> bytes:
    """A GB/T 35275 SignedData (SM2 with SM3), which `openssl cms` and `openssl ts` do not read, checked
    with openssl alone: its messageDigest is `openssl dgst -sm3` of the content (``content`` when
    detached, else the encapsulated one), and `openssl dgst -sm3 -verify` (default id) verifies the SM2
    signature over the signed attributes with the public key `openssl x509 -pubkey` reads from the
    signer's certificate the CMS carries. Returns the content signed; AssertionError when a check fails."""
    from asn1crypto import cms as acms

    signed = acms.ContentInfo.load(der)["content"]
    if content is None:
        content = signed["encap_content_info"]["content"].contents
    si = signed["signer_infos"][0]
    sid = si["sid"].chosen
    signer = next(c.chosen for c in signed["certificates"] if c.name == "certificate"
                  and c.chosen.issuer == sid["issuer"] and c.chosen.serial_number == sid["serial_number"].native)
    (workdir / "gbt.content").write_bytes(content)
    (workdir / "gbt.crt").write_bytes(signer.dump())
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    sm3 = run_openssl("dgst", "-sm3", "-r", workdir / "gbt.content").stdout.decode().split()[0]
    assert attrs["1.2.840.113549.1.9.4"].native.hex() == sm3, "messageDigest is not the content's SM3"
    key = run_openssl("x509", "-inform", "DER", "-in", workdir / "gbt.crt", "-pubkey", "-noout").stdout
    done = openssl_verifies_signature(key, b"\x31" + si["signed_attrs"].dump()[1:], si["signature"].native, workdir)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    return content
