"""pki.cms_view: the hand-written DER reader reads what asn1crypto reads, and declines the rest."""

from __future__ import annotations

import datetime as dt
import random
import subprocess

import pytest
from cryptography.hazmat.primitives import serialization

from pki import cms
from pki.ca import CertificateAuthority
from pki.certificates import pem
from pki.cms_view import read_common
from pki.errors import GwxError
from pki.signer import SoftwareSigner
from tests.support import PASSPHRASE

NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
DATA = b"gwx envelope header\n" * 20


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    base = tmp_path_factory.mktemp("view")
    root = CertificateAuthority.init_root(base / "root", "View Root", PASSPHRASE)
    inter = root.create_intermediate(base / "int", "View County CA", PASSPHRASE)
    key = inter.algorithm.generate()
    signer = SoftwareSigner(key, inter.issue_seal_certificate("91350100M000100Y43", "测试县人民政府",
                                                              key.public_key()))
    return base, root, inter, signer


def _ours(env) -> list[bytes]:
    _, _, inter, signer = env
    return [cms.sign_detached(DATA, signer),
            cms.sign_detached(DATA, signer, signing_time=NOW, extra_certs=[inter.certificate]),
            cms.sign_detached(DATA, signer, signing_time=dt.datetime(2051, 1, 1, tzinfo=dt.UTC),
                              include_signing_cert_v2=False, content_type="1.2.156.1.2.3"),
            cms.sign_detached(DATA, signer, encapsulate=True, include_signer_certificate=False)]


def test_our_signatures_take_the_common_path_and_read_the_same_both_ways(env):
    for sig in _ours(env):
        view = read_common(sig)
        assert view is not None
        assert view == cms._general_view(sig)


def _openssl_sign(env, *args: str) -> bytes:
    base, _, inter, signer = env
    key = signer.private_key_for_tls().private_bytes(serialization.Encoding.PEM,
                                                     serialization.PrivateFormat.PKCS8,
                                                     serialization.NoEncryption())
    (base / "k.pem").write_bytes(key)
    (base / "c.pem").write_bytes(pem(signer.certificate))
    (base / "chain.pem").write_bytes(pem(inter.certificate))
    (base / "data").write_bytes(DATA)
    subprocess.run(["openssl", "cms", "-sign", "-binary", "-outform", "DER", "-in", str(base / "data"),
                    "-signer", str(base / "c.pem"), "-inkey", str(base / "k.pem"), "-certfile",
                    str(base / "chain.pem"), "-md", "sha256", "-out", str(base / "o.p7s"), *args], check=True)
    return (base / "o.p7s").read_bytes()


@pytest.mark.parametrize("args", [(), ("-stream",), ("-noattr",)], ids=["attrs", "ber-stream", "noattr"])
def test_other_producers_are_read_the_general_way_or_equally(env, args):
    _, root, _, signer = env
    sig = _openssl_sign(env, *args)
    view = read_common(sig)
    if args == ("-noattr",):  # no signed attributes at all: the common shape
        assert view == cms._general_view(sig)
    else:  # smimeCapabilities attribute, indefinite lengths: declined, never misread
        assert view is None
    result = cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW)
    assert result.signer_certificate == signer.certificate


def test_trailing_bytes_after_the_signature_are_refused(env):
    sig = _ours(env)[0]
    bad = sig + b"\x00"
    assert read_common(bad) is None
    with pytest.raises(GwxError) as err:
        cms.verify_detached(bad, DATA)
    assert err.value.code == "CMS_MALFORMED"


def test_a_non_minimal_outer_length_is_declined_by_the_fast_reader_and_read_the_same_as_ber(env):
    """The ContentInfo's own length is not signed: re-encoding it as valid BER (a superfluous length
    byte) changes no signed byte. The fast reader declines it; the general reader, which accepts BER
    by design (openssl cms -stream writes indefinite lengths), must read exactly the same signature."""
    _, root, _, signer = env
    sig = _ours(env)[1]
    assert sig[1] == 0x82
    bad = b"\x30\x83\x00" + sig[2:]
    assert read_common(bad) is None
    ber = cms.verify_detached(bad, DATA, trust_roots=[root.certificate], now=NOW)
    der = cms.verify_detached(sig, DATA, trust_roots=[root.certificate], now=NOW)
    assert ber == der and ber.signer_certificate == signer.certificate
    with pytest.raises(GwxError):  # the same re-encoding cannot carry a signature over other data
        cms.verify_detached(bad, DATA + b"x")


def _what_was_signed(result: cms.CmsSignature, own_content: bool = False) -> tuple:
    # With the data given, what was verified is that data; ``content`` is then only what the CMS
    # happened to carry, which nothing checked against the signature.
    return (result.signer_certificate, result.content_type, result.digest_algorithm, result.message_digest,
            result.signing_time, result.content if own_content else None, result.path)


def test_random_damage_never_reads_differently_and_only_fails_typed(env):
    """A view from the common reader is exactly the general reader's. Verifying damaged bytes either
    fails with a typed error or yields exactly what the original signed — same signer certificate
    (checked to the root), content type, digest, signing time and content: damage that lands in
    unsigned bytes (an extra certificate the path does not need, …) may pass, damage to anything
    signed may not."""
    _, root, inter, signer = env
    rng = random.Random(20260302)
    originals = _ours(env)
    anchors = dict(trust_roots=[root.certificate], now=NOW, intermediates=[inter.certificate, signer.certificate])
    expected = [_what_was_signed(cms.verify_detached(sig, DATA, **anchors)) for sig in originals]
    encapsulated = 3  # _ours()[3] carries DATA inside: verify it from its own content too
    expected_own = _what_was_signed(cms.verify_detached(originals[encapsulated], **anchors), own_content=True)
    agreed = refused = still_valid = 0
    for i in range(2000):
        k = i % len(originals)
        bad = bytearray(originals[k])
        for _ in range(rng.randint(1, 3)):
            bad[rng.randrange(len(bad))] = rng.randrange(256)
        bad = bytes(bad[:rng.randrange(len(bad) // 2, len(bad) + 1)]) if i % 5 == 0 else bytes(bad)
        if bad == originals[k]:
            continue
        view = read_common(bad)
        if view is not None:
            assert view == cms._general_view(bad)
            agreed += 1
        own_content = k == encapsulated and i % 8 == 3
        try:
            result = cms.verify_detached(bad, None if own_content else DATA, **anchors)
        except GwxError as exc:
            assert exc.code and exc.code.isupper()
            refused += 1
            continue
        assert _what_was_signed(result, own_content) == (expected_own if own_content else expected[k]), i
        still_valid += 1
    assert agreed > 50  # the damage often lands in values (signature, certificates, hashes), not structure
    assert refused > 1500 and still_valid > 0  # both outcomes were exercised
