"""SM2 and PKCS#11 on this machine: what SoftHSM (Debian's 2.6.1) offers, and the typed refusal of an
SM2 key on a token (docs/architecture.md, "SM2 keys on tokens")."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from asn1crypto.keys import ECDomainParameters
from cryptography import x509
from cryptography.x509.oid import NameOID
from pkcs11 import Attribute, KeyType, Mechanism

from pki import pkcs11 as p11
from pki import profiles
from pki.algorithms import ECDSA_P256_SHA256, SM2_SM3
from pki.errors import BadSignature, HsmSm2Unsupported
from pki.pkcs11 import Pkcs11Signer, generate_keypair_on_token
from pki.sm2 import CURVE_OID, Sm2PrivateKey, Sm2PublicKey
from tests.pki.softhsm import SoftHsm, softhsm_fixture  # noqa: F401  (the `softhsm` fixture)

# PKCS#11 3.1 names no SM2/SM3/SM4 mechanism; tokens that do SM2 (GM/T 0016 devices with a PKCS#11
# face) use vendor-defined values, CKM_VENDOR_DEFINED (0x80000000) and above.
VENDOR_DEFINED = 0x80000000


def _mechanisms(hsm: SoftHsm) -> list[int]:
    token = p11.load_module(hsm.module).get_token(token_label=hsm.token_label)
    return [int(m) for m in token.slot.get_mechanisms()]


def test_softhsm_offers_no_sm2_sm3_or_sm4_mechanism(softhsm):
    mechanisms = _mechanisms(softhsm)
    names = {Mechanism(m).name for m in mechanisms if m < VENDOR_DEFINED}
    assert len(mechanisms) > 50 and {"ECDSA", "EC_KEY_PAIR_GEN", "SHA256_RSA_PKCS"} <= names
    assert not [m for m in mechanisms if m >= VENDOR_DEFINED]  # nothing vendor-defined at all
    assert not [n for n in names if "SM" in n.replace("SMALL", "")]


def test_an_sm2_key_is_not_made_on_a_token(softhsm):
    label = f"sm2-{uuid.uuid4().hex[:8]}"
    with pytest.raises(HsmSm2Unsupported) as err:
        generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin, label, SM2_SM3)
    assert err.value.code == "PKI_HSM_SM2_UNSUPPORTED"


def test_an_ec_key_on_the_sm2_curve_is_refused_and_its_ecdsa_is_no_sm2_signature(softhsm):
    # SoftHSM makes an EC key on the SM2 curve when asked, and CKM_ECDSA signs with it — but that is
    # ECDSA on the curve, which an SM2 verifier (GB/T 32918: Z_A, another equation) refuses.
    label = f"sm2curve-{uuid.uuid4().hex[:8]}"
    token = p11.load_module(softhsm.module).get_token(token_label=softhsm.token_label)
    with token.open(user_pin=softhsm.pin, rw=True) as session:
        params = session.create_domain_parameters(
            KeyType.EC, {Attribute.EC_PARAMS: ECDomainParameters({"named": CURVE_OID}).dump()}, local=True)
        public, private = params.generate_keypair(store=True, label=label)
        point = public[Attribute.EC_POINT]
        digest = b"\x01" * 32
        raw = private.sign(digest, mechanism=Mechanism.ECDSA)
    sm2_public = Sm2PublicKey.from_point(point[2:])  # CKA_EC_POINT: a DER OCTET STRING (04 41) round the point
    with pytest.raises(BadSignature):
        sm2_public.verify(raw, digest)
    signer = Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, label)
    with pytest.raises(HsmSm2Unsupported) as err:
        signer.sign(b"a document")
    assert err.value.code == "PKI_HSM_SM2_UNSUPPORTED"


def test_an_sm2_certificate_for_a_token_key_is_refused(softhsm):
    key = generate_keypair_on_token(softhsm.module, softhsm.token_label, softhsm.pin,
                                    f"ec-{uuid.uuid4().hex[:8]}", ECDSA_P256_SHA256)
    sm2 = Sm2PrivateKey.generate()
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "an SM2 seal")])
    cert = profiles.build_certificate(name, sm2.public_key(), name, sm2, profiles.SEAL, 30,
                                      dt.datetime.now(dt.UTC), SM2_SM3)
    with (Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key.key_label) as signer,
          pytest.raises(HsmSm2Unsupported) as err):
        signer.with_certificate(cert)
    assert err.value.code == "PKI_HSM_SM2_UNSUPPORTED"
    with pytest.raises(HsmSm2Unsupported):
        Pkcs11Signer(softhsm.module, softhsm.token_label, softhsm.pin, key.key_label, certificate=cert).open()
