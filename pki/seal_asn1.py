"""asn1crypto definitions of the GB/T 38540-2020 ("v4") seal structures — the emitting side.

These classes mirror shared/standards.md field for field and are what :mod:`pki.seal` uses to
*write* a seal: we emit exactly v4, DER. Reading goes through :mod:`pki.seal_der` instead,
because seals made by other products disagree on string types, time types and tagging
(and GM/T 0031-2014 "v1" has another shape altogether); asn1crypto's strict types would
reject them, and re-encoding a parsed value could change the bytes the maker signed.

``SES_CertList`` is a CHOICE between two untagged ``SEQUENCE OF``; the alternatives share a tag,
so it can only be told apart by ``certListType``. We construct it by alternative name; when
asn1crypto parses one (e.g. a seal nested in a ``TBS_Sign``) it reads the ``certs`` alternative.
"""

from __future__ import annotations

from asn1crypto.core import (
    Boolean,
    Choice,
    GeneralizedTime,
    IA5String,
    Integer,
    ObjectIdentifier,
    OctetBitString,
    OctetString,
    PrintableString,
    Sequence,
    SequenceOf,
    UTF8String,
)

SEAL_HEADER_ID = "ES"
SEAL_VERSION_V4 = 4

UNIT_SEAL = 1  # 单位印章
PERSONAL_SEAL = 2  # 个人印章

CERT_LIST_CERTS = 1
CERT_LIST_DIGESTS = 2


class SESHeader(Sequence):
    _fields = [
        ("id", IA5String),
        ("version", Integer),
        ("vid", IA5String),
    ]


class CertInfoList(SequenceOf):
    _child_spec = OctetString


class CertDigestObj(Sequence):
    _fields = [
        ("type", PrintableString),
        ("value", OctetString),
    ]


class CertDigestList(SequenceOf):
    _child_spec = CertDigestObj


class SESCertList(Choice):
    _alternatives = [
        ("certs", CertInfoList),
        ("cert_digest_list", CertDigestList),
    ]

    def _setup(self) -> None:
        super()._setup()
        # Both alternatives are a universal SEQUENCE; asn1crypto would map the tag to the last
        # one. Parse as ``certs`` (certListType 1, what we emit); pki.seal's reader handles 2.
        type(self)._id_map[(0, 16)] = 0


class SESESPropertyInfo(Sequence):
    _fields = [
        ("type", Integer),
        ("name", UTF8String),
        ("cert_list_type", Integer),
        ("cert_list", SESCertList),
        ("create_date", GeneralizedTime),
        ("valid_start", GeneralizedTime),
        ("valid_end", GeneralizedTime),
    ]


class SESESPictrueInfo(Sequence):  # sic: the standard's spelling
    _fields = [
        ("type", IA5String),
        ("data", OctetString),
        ("width", Integer),
        ("height", Integer),
    ]


class ExtData(Sequence):
    _fields = [
        ("extn_id", ObjectIdentifier),
        ("critical", Boolean),
        ("extn_value", OctetString),
    ]


class ExtensionDatas(SequenceOf):
    _child_spec = ExtData


class SESSealInfo(Sequence):
    _fields = [
        ("header", SESHeader),
        ("es_id", IA5String),
        ("property", SESESPropertyInfo),
        ("picture", SESESPictrueInfo),
        ("ext_datas", ExtensionDatas, {"optional": True}),
    ]


class SESeal(Sequence):
    _fields = [
        ("e_seal_info", SESSealInfo),
        ("cert", OctetString),
        ("sign_alg_id", ObjectIdentifier),
        ("signed_value", OctetBitString),
    ]


# --- sealed signatures (签章), for the signing side built later ------------------------------


class TBSSign(Sequence):
    _fields = [
        ("version", Integer),
        ("eseal", SESeal),
        ("time_info", GeneralizedTime),
        ("data_hash", OctetBitString),
        ("property_info", IA5String),
        ("ext_datas", ExtensionDatas, {"explicit": 0, "optional": True}),
    ]


class SESSignature(Sequence):
    _fields = [
        ("to_sign", TBSSign),
        ("cert", OctetString),
        ("signature_alg_id", ObjectIdentifier),
        ("signature", OctetBitString),
        ("time_stamp", OctetBitString, {"explicit": 0, "optional": True}),
    ]
