"""Envelopes on a 国密 network: SM4-GCM content, SM2 key transport, SM2/SM3-signed headers — and checked
by tools we did not write: `openssl pkeyutl` recovers the content key from our SM2 key transport,
`openssl enc -sm4-ctr` decrypts the GCM ciphertext with it and the tag is recomputed here from NIST SP
800-38D's GHASH over `openssl enc -sm4-ecb` blocks; `openssl dgst -sm3` and gmalg verify the header
signatures; and the other way, gmalg signs a header and (with openssl's SM4) makes a payload that we open.
A network takes envelopes of its own profile only: PKI_PROFILE_MISMATCH otherwise."""

from __future__ import annotations

import datetime as dt
import io

import gmalg
import pytest
from asn1crypto import cms as acms
from cryptography.hazmat.primitives import serialization

from exchange_protocol import errors as E
from exchange_protocol.envelope_ciphers import OID_SM2_ENCRYPT, OID_SM4_GCM
from exchange_protocol.envelope_crypto import (
    PayloadDecryptor,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
    encrypted_length,
)
from exchange_protocol.envelope_seal import (
    RelayCheck,
    TrustPolicy,
    open_envelope,
    open_envelope_bytes,
    seal_bundle,
    seal_envelope,
    seal_stream,
    write_envelope,
)
from exchange_protocol.frame import FrameDecoder
from pki.errors import UnsupportedAlgorithm
from pki.sm2 import DEFAULT_ID
from pki.trust import TrustStore
from pki.x509_sm2 import public_key_of
from tests.exchange_protocol.envelope_support import NOW, UNIT_B, network, sm_network
from tests.pki.sm_support import openssl_verifies_signature, signature_rs
from tests.support import run_openssl

PLAINTEXT = "国密公文正文 SM4 body\r\n".encode() * 200
GBT_SIGNED_DATA = "1.2.156.10197.6.1.4.2.2"


def _payload_parts(payload: bytes) -> dict:
    """The AuthEnvelopedData's pieces, read by asn1crypto (not our reader)."""
    info = acms.ContentInfo.load(payload)
    assert info["content_type"].dotted == "1.2.840.113549.1.9.16.1.23"
    aed = info["content"]
    [ri] = aed["recipient_infos"]
    ktri = ri.chosen
    eci = aed["auth_encrypted_content_info"]
    alg = eci["content_encryption_algorithm"]
    params = alg["parameters"]
    return {"ktri": ktri, "key_alg": ktri["key_encryption_algorithm"]["algorithm"].dotted,
            "encrypted_key": ktri["encrypted_key"].native, "content_alg": alg["algorithm"].dotted,
            "params": params.dump(), "ciphertext": eci["encrypted_content"].native, "mac": aed["mac"].native}


def _gf_mult(x: int, y: int) -> int:
    """Multiplication in GF(2^128) as SP 800-38D Algorithm 1 writes it (bit 0 is the leftmost)."""
    r, z, v = 0xE1 << 120, 0, y
    for i in range(127, -1, -1):
        if (x >> i) & 1:
            z ^= v
        v = (v >> 1) ^ r if v & 1 else v >> 1
    return z


def _ghash(h: bytes, data: bytes) -> int:
    hk, x = int.from_bytes(h, "big"), 0
    padded = data + bytes(-len(data) % 16)
    blocks = [padded[i:i + 16] for i in range(0, len(padded), 16)]
    blocks.append((0).to_bytes(8, "big") + (len(data) * 8).to_bytes(8, "big"))  # len(A) = 0, len(C)
    for block in blocks:
        x = _gf_mult(x ^ int.from_bytes(block, "big"), hk)
    return x


def _openssl_sm4(mode: str, key: bytes, data: bytes, tmp_path, iv: bytes | None = None) -> bytes:
    (tmp_path / "in.bin").write_bytes(data)
    args = ["enc", f"-sm4-{mode}", "-nopad", "-K", key.hex(), "-in", tmp_path / "in.bin"]
    if iv is not None:
        args += ["-iv", iv.hex()]
    return run_openssl(*args).stdout


@pytest.fixture(scope="module")
def sm():
    return sm_network()


def test_openssl_recovers_the_key_and_the_content_and_the_gcm_tag_is_sm4s(sm, tmp_path):
    b = sm.nodes["b"]
    payload = encrypt_bytes(PLAINTEXT, b.recipient)
    parts = _payload_parts(payload)
    assert parts["content_alg"] == "1.2.156.10197.1.104.8" and OID_SM4_GCM[2:] in payload
    assert parts["key_alg"] == "1.2.156.10197.1.301.3" and OID_SM2_ENCRYPT[2:] in payload
    (tmp_path / "ek.der").write_bytes(parts["encrypted_key"])
    cek = run_openssl("pkeyutl", "-decrypt", "-inkey", b.enc_key_pem, "-in", tmp_path / "ek.der").stdout
    assert len(cek) == 16
    params = parts["params"]  # GCMParameters: SEQUENCE { OCTET STRING nonce, INTEGER 16 }
    assert params[2] == 0x04 and params[3] == 12 and params[-3:] == b"\x02\x01\x10"
    nonce = params[4:16]
    # GCM's ciphertext is the plaintext XOR SM4-CTR from inc32(J0), J0 = nonce || 00000001
    plain = _openssl_sm4("ctr", cek, parts["ciphertext"], tmp_path, iv=nonce + (2).to_bytes(4, "big"))
    assert plain == PLAINTEXT
    h, ej0 = (_openssl_sm4("ecb", cek, bytes(16) + nonce + (1).to_bytes(4, "big"), tmp_path)[i:i + 16]
              for i in (0, 16))
    tag = (_ghash(h, parts["ciphertext"]) ^ int.from_bytes(ej0, "big")).to_bytes(16, "big")
    assert tag == parts["mac"]


def test_gmalg_decrypts_the_transported_key_too(sm):
    from tests.pki.sm_support import ciphertext_raw

    b = sm.nodes["b"]
    payload = encrypt_bytes(PLAINTEXT, b.recipient)
    key = b.key.private_key
    theirs = gmalg.SM2(key.scalar(), DEFAULT_ID, pk=key.public_key().point())
    cek = theirs.decrypt(ciphertext_raw(_payload_parts(payload)["encrypted_key"]))
    assert len(cek) == 16 and decrypt_bytes(payload, b.key) == PLAINTEXT


def test_header_signatures_are_sm2_sm3_and_openssl_and_gmalg_verify_them(sm, tmp_path):
    a, b = sm.nodes["a"], sm.nodes["b"]
    sealed = seal_envelope(sm.draft(), PLAINTEXT, a.sender, b.recipient)
    decoder = FrameDecoder()
    decoder.feed(sealed.data)
    [signed] = decoder.head.signed
    info = acms.ContentInfo.load(signed.signature)
    assert info["content_type"].dotted == GBT_SIGNED_DATA
    si = info["content"]["signer_infos"][0]
    assert si["digest_algorithm"]["algorithm"].dotted == "1.2.156.10197.1.401"
    attrs = {a["type"].dotted: a["values"][0] for a in si["signed_attrs"]}
    sm3 = gmalg.SM3()
    sm3.update(signed.header_bytes)
    assert attrs["1.2.840.113549.1.9.4"].native == sm3.value()
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]
    signature = si["signature"].native
    pub = public_key_of(a.creds.signing_certificate)
    done = openssl_verifies_signature(pub.public_bytes(serialization.Encoding.PEM), signed_attrs, signature,
                                      tmp_path)
    assert done.returncode == 0 and b"Verified OK" in done.stdout, done.stderr
    r, s = signature_rs(signature)
    assert gmalg.SM2(pk=pub.point(), uid=DEFAULT_ID).verify(signed_attrs, r.to_bytes(32, "big"), s.to_bytes(32, "big"))
    assert not gmalg.SM2(pk=pub.point(), uid=DEFAULT_ID).verify(signed_attrs + b"x", r.to_bytes(32, "big"),
                                                                s.to_bytes(32, "big"))


def test_an_sm2_node_opens_what_another_seals_streamed_and_relayed_bundles_too(sm, tmp_path):
    a, b, c = sm.nodes["a"], sm.nodes["b"], sm.nodes["c"]
    opened, plain = open_envelope_bytes(seal_envelope(sm.draft(), PLAINTEXT, a.sender, b.recipient).data,
                                        sm.policy, b.key, "b", NOW)
    assert plain == PLAINTEXT and opened.header.destination_node == "b"
    assert opened.signer_certificate == a.creds.signing_certificate
    # streamed, 3 MiB through a spool, as the node sends documents
    body = bytes(range(256)) * (3 * 4096 + 7)
    spool, frame, out = io.BytesIO(), io.BytesIO(), io.BytesIO()
    _, prefix = seal_stream(sm.draft(), io.BytesIO(body), len(body), spool, a.sender, b.recipient)
    spool.seek(0)
    write_envelope(prefix, spool, frame)
    frame.seek(0)
    assert open_envelope(frame, out, sm.policy, b.key, "b", NOW).plaintext_length == len(body)
    assert out.getvalue() == body
    # a bundle for b and c (c under the intermediate): one SM4 payload, each opens its own header
    drafts = [sm.draft(destination="b"), sm.draft(destination="c")]
    bundle = seal_bundle(drafts, PLAINTEXT, a.sender, [b.recipient, c.recipient])
    for node in (b, c):
        _, got = open_envelope_bytes(bundle.data, sm.policy, node.key, node.id, NOW)
        assert got == PLAINTEXT
    # a relay (no key) checks every SM2 header and forwards c's alone, the same SM4 payload bytes
    check = RelayCheck(sm.policy, NOW)
    payload = check.feed(bundle.data)
    verified, _ = check.close()
    to_c = verified.subset_prefix(["c"], verified.head.hops + 1) + payload
    opened, got = open_envelope_bytes(to_c, sm.policy, c.key, "c", NOW)
    assert got == PLAINTEXT and opened.hops == 1 and len(opened.verified.headers) == 1


def test_payload_lengths_streaming_and_every_chunking(sm):
    b, c = sm.nodes["b"], sm.nodes["c"]
    src = bytes(200_003)
    out = io.BytesIO()
    sealed = encrypt_stream(io.BytesIO(src), out, len(src), [b.recipient, c.recipient], chunk_size=65536)
    assert sealed.length == len(out.getvalue()) <= encrypted_length(len(src), [b.recipient, c.recipient])
    assert encrypted_length(len(src), [b.recipient, c.recipient]) - sealed.length <= 4  # two INTEGERs each
    for key in (b.key, c.key):
        dec, got = PayloadDecryptor(key), bytearray()
        for i in range(0, sealed.length, 777):
            got += dec.update(out.getvalue()[i:i + 777])
        dec.finalize()
        assert bytes(got) == src
        back = io.BytesIO()
        assert decrypt_stream(io.BytesIO(out.getvalue()), back, key) == len(src) and back.getvalue() == src


def test_tampered_payloads_wrong_keys_and_altered_key_transport_are_typed_errors(sm):
    b, c = sm.nodes["b"], sm.nodes["c"]
    payload = bytearray(encrypt_bytes(PLAINTEXT, b.recipient))
    for at in (len(payload) - 40, len(payload) - 1):  # ciphertext, then the tag
        changed = bytearray(payload)
        changed[at] ^= 1
        with pytest.raises(E.EnvelopeTagMismatch) as err:
            decrypt_bytes(bytes(changed), b.key)
        assert "SM4-GCM" in err.value.message
    with pytest.raises(E.EnvelopeNotForMe):
        decrypt_bytes(bytes(payload), c.key)
    ek = _payload_parts(bytes(payload))["encrypted_key"]
    at = bytes(payload).index(ek) + len(ek) - 5  # inside C2, the encrypted key itself
    changed = bytearray(payload)
    changed[at] ^= 1
    with pytest.raises(E.EnvelopeDecryptionFailed):
        decrypt_bytes(bytes(changed), b.key)


def test_a_changed_frame_and_an_untrusted_sm2_signer_are_refused(sm):
    a, b, rogue = sm.nodes["a"], sm.nodes["b"], sm.nodes["rogue-a"]
    data = bytearray(seal_envelope(sm.draft(), PLAINTEXT, a.sender, b.recipient).data)
    data[-30] ^= 1
    with pytest.raises((E.EnvelopePayloadDigestMismatch, E.EnvelopeTagMismatch)):
        open_envelope_bytes(bytes(data), sm.policy, b.key, "b", NOW)
    forged = seal_envelope(sm.draft(), PLAINTEXT, rogue.sender, b.recipient).data
    with pytest.raises(E.EnvelopeSignerUntrusted):
        open_envelope_bytes(forged, sm.policy, b.key, "b", NOW)


def test_a_p256_envelope_on_an_sm_network_and_the_reverse_are_profile_mismatches(sm):
    intl = network()
    pa, pb, sa, sb = intl.nodes["a"], intl.nodes["b"], sm.nodes["a"], sm.nodes["b"]
    p256_frame = seal_envelope(intl.draft(), PLAINTEXT, pa.sender, pb.recipient).data
    sm_frame = seal_envelope(sm.draft(), PLAINTEXT, sa.sender, sb.recipient).data
    # the header is judged first: signed with the other profile's key than the receiving network's roots
    for frame, policy, key in ((p256_frame, sm.policy, sb.key), (sm_frame, intl.policy, pb.key)):
        with pytest.raises(UnsupportedAlgorithm) as err:
            open_envelope_bytes(frame, policy, key, "b", NOW)
        assert err.value.code == "PKI_PROFILE_MISMATCH"
    # the payload on its own: AES-GCM for an SM2 key, SM4-GCM for a P-256 one
    for payload, key in ((encrypt_bytes(PLAINTEXT, pb.recipient), sb.key),
                         (encrypt_bytes(PLAINTEXT, sb.recipient), pb.key)):
        with pytest.raises(UnsupportedAlgorithm) as err:
            decrypt_bytes(payload, key)
        assert err.value.code == "PKI_PROFILE_MISMATCH"
    # sealing: an SM2 origin for a P-256 destination, and one payload for both kinds
    with pytest.raises(UnsupportedAlgorithm) as err:
        seal_envelope(sm.draft(), PLAINTEXT, sa.sender, pb.recipient)
    assert err.value.code == "PKI_PROFILE_MISMATCH"
    with pytest.raises(UnsupportedAlgorithm) as err:
        encrypt_bytes(PLAINTEXT, [sb.recipient, pb.recipient])
    assert err.value.code == "PKI_PROFILE_MISMATCH"


def test_a_network_holding_a_p256_transport_root_beside_its_sm2_root_is_still_a_gm_network(sm):
    """smnet's TLS answer puts a P-256 root beside the SM2 one: envelopes stay SM2, P-256 ones refused."""
    intl = network()
    both = TrustPolicy(TrustStore.of([sm.root.certificate, intl.root.certificate]))
    sa, sb, pa, pb = sm.nodes["a"], sm.nodes["b"], intl.nodes["a"], intl.nodes["b"]
    _, plain = open_envelope_bytes(seal_envelope(sm.draft(), PLAINTEXT, sa.sender, sb.recipient).data, both,
                                   sb.key, "b", NOW)
    assert plain == PLAINTEXT
    with pytest.raises(UnsupportedAlgorithm) as err:
        open_envelope_bytes(seal_envelope(intl.draft(), PLAINTEXT, pa.sender, pb.recipient).data, both, pb.key,
                            "b", NOW)
    assert err.value.code == "PKI_PROFILE_MISMATCH"


def test_an_expired_sm_envelope_is_refused_like_any_other(sm):
    a, b = sm.nodes["a"], sm.nodes["b"]
    draft = sm.draft(to=(UNIT_B,))
    sealed = seal_envelope(draft, PLAINTEXT, a.sender, b.recipient)
    with pytest.raises(E.EnvelopeExpired):
        open_envelope_bytes(sealed.data, sm.policy, b.key, "b", NOW + dt.timedelta(days=2))


def test_a_header_signed_by_gmalg_with_the_nodes_key_is_accepted_and_a_wrong_one_refused(sm):
    """A second SM2 implementation producing the signature we verify: gmalg signs the CMS signed attributes
    of a header with node a's signing key (its scalar), spliced into the SignerInfo in place of ours."""
    from exchange_protocol.frame import SignedHeader, encode_prefix
    from pki.errors import PkiError
    from pki.keystore import read_private_key
    from tests.pki.sm_support import signature_der
    from tests.support import PASSPHRASE

    a, b = sm.nodes["a"], sm.nodes["b"]
    payload = encrypt_bytes(PLAINTEXT, b.recipient)
    sm3 = gmalg.SM3()
    sm3.update(payload)
    header_bytes = sm.draft().complete(len(payload), sm3.value(), "sm3").encode()
    info = acms.ContentInfo.load(a.sender.sign(header_bytes))
    si = info["content"]["signer_infos"][0]
    signed_attrs = b"\x31" + si["signed_attrs"].dump()[1:]
    key = read_private_key(a.creds.directory / "sign.key", PASSPHRASE)  # its scalar goes to gmalg
    theirs = gmalg.SM2(key.scalar(), DEFAULT_ID, pk=key.public_key().point())

    def frame_signed_over(data: bytes) -> bytes:
        r, s = theirs.sign(data)
        si["signature"] = signature_der(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
        return encode_prefix([SignedHeader(header_bytes, info.dump(force=False))], len(payload)) + payload

    frame = frame_signed_over(signed_attrs)
    assert si["signature"].native != acms.ContentInfo.load(a.sender.sign(header_bytes))["content"][
        "signer_infos"][0]["signature"].native  # gmalg's, not ours (SM2 signatures are randomised anyway)
    _, plain = open_envelope_bytes(frame, sm.policy, b.key, "b", NOW)
    assert plain == PLAINTEXT
    with pytest.raises((E.EnvelopeBadSignature, PkiError)) as err:
        open_envelope_bytes(frame_signed_over(signed_attrs + b"x"), sm.policy, b.key, "b", NOW)
    assert err.value.code == "ENV_BAD_SIGNATURE"


def test_a_payload_made_without_our_code_opens(sm, tmp_path):
    """The other direction for the payload: gmalg's SM2 encryption carries the key, `openssl enc -sm4-ctr`
    and SP 800-38D's GHASH (over `-sm4-ecb` blocks) make the SM4-GCM content and tag, asn1crypto lays out
    the AuthEnvelopedData as RFC 5083 and GB/T 35275 name its parts — and our reader opens it."""
    from asn1crypto import core
    from asn1crypto import x509 as ax

    from tests.pki.sm_support import ciphertext_der

    b = sm.nodes["b"]
    cert = ax.Certificate.load(b.creds.encryption_certificate.public_bytes(serialization.Encoding.DER))
    cek, nonce = bytes(range(16)), bytes(range(100, 112))
    raw = gmalg.SM2(pk=b.key.private_key.public_key().point()).encrypt(cek)  # C1 || C3 || C2
    ciphertext = _openssl_sm4("ctr", cek, PLAINTEXT, tmp_path, iv=nonce + (2).to_bytes(4, "big"))
    h, ej0 = (_openssl_sm4("ecb", cek, bytes(16) + nonce + (1).to_bytes(4, "big"), tmp_path)[i:i + 16]
              for i in (0, 16))
    tag = (_ghash(h, ciphertext) ^ int.from_bytes(ej0, "big")).to_bytes(16, "big")
    ktri = acms.KeyTransRecipientInfo({
        "version": "v0",
        "rid": acms.RecipientIdentifier(name="issuer_and_serial_number", value=acms.IssuerAndSerialNumber(
            {"issuer": cert.issuer, "serial_number": cert.serial_number})),
        "key_encryption_algorithm": {"algorithm": "1.2.156.10197.1.301.3"},
        "encrypted_key": ciphertext_der(raw[:65], raw[65:97], raw[97:])})
    gcm_parameters = core.Any.load(bytes([0x30, 17, 0x04, 12]) + nonce + b"\x02\x01\x10")
    aed = acms.AuthEnvelopedData({
        "version": "v0", "recipient_infos": [acms.RecipientInfo(name="ktri", value=ktri)],
        "auth_encrypted_content_info": {
            "content_type": "data", "encrypted_content": ciphertext,
            "content_encryption_algorithm": {"algorithm": "1.2.156.10197.1.104.8", "parameters": gcm_parameters}},
        "mac": tag})
    payload = acms.ContentInfo({"content_type": "authenticated_enveloped_data", "content": aed}).dump()
    assert decrypt_bytes(payload, b.key) == PLAINTEXT
    with pytest.raises(E.EnvelopeTagMismatch):
        decrypt_bytes(payload[:-1] + bytes([payload[-1] ^ 1]), b.key)
