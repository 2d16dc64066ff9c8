"""Electronic seals (电子印章, GB/T 38540-2020): the model, a tolerant parser and the builder.

``parse_seal(bytes) -> Seal`` reads GM/T 0031-2014 ("v1": ``SESeal{sealInfo, signInfo}``,
``certList`` directly in the property, UTCTime), GB/T 38540 ("v4") and GM/T 0031-2025 ("v5":
a fifth ``[0]`` timeStamp field), accepting the string, time and tagging variants public
encoders produce. The :class:`Seal` it returns keeps ``seal_info_der`` — the eSealInfo bytes
exactly as received — because that is what the maker signed; re-encoding could change them.
Every failure is a typed error (``SEAL_MALFORMED``, ``SEAL_UNSUPPORTED_VERSION``).

:class:`SealBuilder` is immutable (``with_*`` return copies) and validates everything at
:meth:`SealBuilder.build`, which signs DER(eSealInfo) with the seal maker's :class:`Signer` and
emits exactly v4. :func:`encode_seal` is the unvalidated encoder underneath, kept separate so
tests can produce well-signed seals with bad content. Verification lives in ``pki.seal_verify``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass, field

from cryptography import x509

from . import seal_asn1 as A
from . import seal_der as D
from .certificates import unit_code_of
from .errors import InvalidInput, SealMalformed, SealPictureInvalid, SealUnsupportedVersion
from .seal_picture import STANDARD_DIAMETER_MM, validate_png
from .signer import Signer
from .sm3_sm4 import sm3
from .unit_code import validate_unit_code

MAX_SEAL_BYTES = 4 * 1024 * 1024
MAX_CERTS = 64
SUPPORTED_VERSIONS = {1: "v1", 2: "v1", 4: "v4", 5: "v5"}  # header version → family
DEFAULT_VID = "gwx"


class _memo:
    """A value computed on first use and kept in the instance: ``functools.cached_property`` without
    Python 3.11's one lock per property for *all* instances (threads of a receiver waited on it in
    turn). Two threads may both compute a value the first time; it is the same value."""

    def __init__(self, func):
        self.func = func
        self.__doc__ = func.__doc__

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, instance, owner=None):
        if instance is None:
            return self
        value = self.func(instance)
        instance.__dict__[self.name] = value  # found first from now on (a non-data descriptor)
        return value


@dataclass(frozen=True)
class CertDigest:
    type: str  # hash name as written by the maker ("sha256", "SM3", …)
    value: bytes


@dataclass(frozen=True)
class ExtData:
    extn_id: str
    critical: bool
    value: bytes


@dataclass(frozen=True)
class SealPicture:
    type: str  # "PNG", "GIF", "JPG", "SVG", "OFD" as declared by the maker
    data: bytes
    width_mm: int
    height_mm: int


@dataclass(frozen=True)
class Seal:
    """One parsed seal. Times are aware UTC datetimes."""

    format: str  # "v1" | "v4" | "v5" (shape of the structure)
    header_version: int
    vid: str
    es_id: str
    seal_type: int  # 1 unit seal, 2 personal seal
    name: str
    cert_list_type: int  # 1 certificates, 2 certificate digests
    cert_list: tuple[bytes, ...]  # DER certificates (cert_list_type 1)
    cert_digests: tuple[CertDigest, ...]  # (cert_list_type 2)
    create_date: dt.datetime
    valid_start: dt.datetime
    valid_end: dt.datetime
    picture: SealPicture
    ext_datas: tuple[ExtData, ...]
    maker_cert_der: bytes
    sign_alg_oid: str
    signed_value: bytes
    seal_info_der: bytes  # exactly as received: what signed_value covers
    time_stamp: bytes | None = None  # v5 only, raw TLV
    der: bytes = field(default=b"", repr=False)

    @_memo
    def maker_certificate(self) -> x509.Certificate:
        try:
            return x509.load_der_x509_certificate(self.maker_cert_der)
        except ValueError as exc:
            raise SealMalformed(f"seal maker certificate does not parse: {exc}", field="cert") from None

    @_memo
    def seal_certificates(self) -> tuple[x509.Certificate, ...]:
        out = []
        for i, der in enumerate(self.cert_list):
            try:
                out.append(x509.load_der_x509_certificate(der))
            except ValueError as exc:
                raise SealMalformed(f"certList[{i}] does not parse as a certificate: {exc}",
                                    field="certList") from None
        return tuple(out)

    @_memo
    def unit_code(self) -> str | None:
        """The 统一社会信用代码 named by the first seal certificate that names one."""
        try:
            certs = self.seal_certificates
        except SealMalformed:
            return None
        for cert in certs:
            code = unit_code_of(cert)
            if code:
                return code
        return None

    def matches_certificate(self, cert: x509.Certificate) -> bool:
        """Whether ``cert`` is one the seal lists (by DER, or by digest for certListType 2); kept per
        certificate (a kept seal meets its signer in every package). Frozen: in __dict__, as _memo."""
        answers = self.__dict__.setdefault("_listed", {})
        answer = answers.get(cert)  # certificates hash and compare by their DER
        if answer is None:
            if len(answers) >= 16:
                answers.clear()
            answer = answers[cert] = self._matches(cert)
        return answer

    def _matches(self, cert: x509.Certificate) -> bool:
        from cryptography.hazmat.primitives.serialization import Encoding
        der = cert.public_bytes(Encoding.DER)
        if self.cert_list_type == A.CERT_LIST_CERTS:
            return der in self.cert_list
        for d in self.cert_digests:
            name = d.type.lower().replace("-", "")
            if name == "sm3" and sm3(der) == d.value:  # not every hashlib has SM3: pyca's
                return True
            if name in hashlib.algorithms_available and hashlib.new(name, der).digest() == d.value:
                return True
        return False


# --- parsing -----------------------------------------------------------------------------------


def parse_seal(data: bytes, *, max_bytes: int = MAX_SEAL_BYTES) -> Seal:
    """Parse a DER seal (v1, v4 or v5). Raises ``SEAL_MALFORMED`` / ``SEAL_UNSUPPORTED_VERSION``.

    The same bytes give the same (frozen) seal: the last 64 of up to :data:`CACHED_SEAL_BYTES` are
    kept with what they computed on first use (certificates, unit code), as every package of a unit
    carries its one seal. A seal that fails is parsed afresh each time (errors are not kept)."""
    if isinstance(data, Seal):
        return data
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise SealMalformed("a seal must be bytes")
    data = bytes(data)
    if len(data) > max_bytes:
        raise SealMalformed(f"seal of {len(data)} bytes exceeds the {max_bytes}-byte limit", size=len(data))
    return _parse_kept(data) if len(data) <= CACHED_SEAL_BYTES else _parse(data)


CACHED_SEAL_BYTES = 256 * 1024
_parse_kept = functools.lru_cache(maxsize=64)(lambda data: _parse(data))


def _parse(data: bytes) -> Seal:
    if data.lstrip().startswith(b"-----BEGIN"):
        raise SealMalformed("this is PEM text; a seal (.esl) is binary DER")
    top = D.as_sequence(D.read_single(data, "SESeal"), "SESeal")
    if len(top) == 2 and top[1].is_universal(D.TAG_SEQUENCE):  # v1: {sealInfo, signInfo}
        shape = "v1"
        sign = D.as_sequence(top[1], "signInfo")
        if len(sign) < 3:
            raise SealMalformed("signInfo needs cert, algorithm and signature", field="signInfo")
        cert_t, alg_t, sig_t = sign[:3]
        ts = None
    elif len(top) in (4, 5):
        shape = "v4" if len(top) == 4 else "v5"
        cert_t, alg_t, sig_t = top[1:4]
        ts = None
        if len(top) == 5:
            if top[4].cls != D.CONTEXT or top[4].tag != 0:
                raise SealMalformed("fifth SESeal field must be the [0] timeStamp", field="timeStamp")
            ts = top[4].raw
    else:
        raise SealMalformed(f"SESeal has {len(top)} fields; expected 2 (v1), 4 (v4) or 5 (v5)")
    info_tlv = top[0]
    info = _parse_seal_info(info_tlv, shape)
    return Seal(
        format=shape if info["header_version"] != 5 else "v5",
        **info,
        maker_cert_der=D.as_octets(cert_t, "cert"),
        sign_alg_oid=D.as_oid(alg_t, "signAlgID"),
        signed_value=D.as_bits(sig_t, "signedValue"),
        seal_info_der=info_tlv.raw,
        time_stamp=ts,
        der=data,
    )


def _parse_seal_info(tlv: D.Tlv, shape: str) -> dict:
    fields = D.as_sequence(tlv, "eSealInfo")
    if len(fields) not in (4, 5):
        raise SealMalformed(f"eSealInfo has {len(fields)} fields, expected 4 or 5", field="eSealInfo")
    header = D.as_sequence(fields[0], "header")
    if len(header) != 3:
        raise SealMalformed("header must be {id, version, vid}", field="header")
    if D.as_string(header[0], "header.id") != A.SEAL_HEADER_ID:
        raise SealMalformed("header id is not \"ES\": not an electronic seal", field="header.id")
    version = D.as_int(header[1], "header.version", 0, 255)
    family = SUPPORTED_VERSIONS.get(version)
    if family is None:
        raise SealUnsupportedVersion(f"seal version {version} is not supported (1, 2, 4, 5 are)",
                                     version=version)
    if (family == "v1") != (shape == "v1"):
        raise SealMalformed(f"header says version {version} but the structure is {shape}-shaped",
                            version=version)
    out = {"header_version": version, "vid": D.as_string(header[2], "header.vid"),
           "es_id": D.as_string(fields[1], "esID")}
    out.update(_parse_property(fields[2], family))
    out["picture"] = _parse_picture(fields[3])
    out["ext_datas"] = _parse_ext_datas(fields[4]) if len(fields) == 5 else ()
    return out


def _parse_property(tlv: D.Tlv, family: str) -> dict:
    f = D.as_sequence(tlv, "property")
    seal_type = D.as_int(f[0], "property.type", 0, 255) if f else None
    if family == "v1":
        if len(f) != 6:
            raise SealMalformed(f"v1 property has {len(f)} fields, expected 6", field="property")
        list_type, list_tlv, dates = A.CERT_LIST_CERTS, f[2], f[3:6]
    else:
        if len(f) != 7:
            raise SealMalformed(f"property has {len(f)} fields, expected 7", field="property")
        list_type = D.as_int(f[2], "property.certListType", 0, 255)
        list_tlv, dates = D.unwrap_context(f[3], "property.certList"), f[4:7]
    entries = D.as_sequence(list_tlv, "property.certList")
    if not entries or len(entries) > MAX_CERTS:
        raise SealMalformed(f"certList has {len(entries)} entries (1–{MAX_CERTS} allowed)", field="certList")
    certs: tuple[bytes, ...] = ()
    digests: tuple[CertDigest, ...] = ()
    if list_type == A.CERT_LIST_CERTS:
        certs = tuple(D.as_octets(e, "certList.cert") for e in entries)
    elif list_type == A.CERT_LIST_DIGESTS:
        pairs = [D.as_sequence(e, "certList.digest") for e in entries]
        if any(len(p) != 2 for p in pairs):
            raise SealMalformed("CertDigestObj must be {type, value}", field="certList")
        digests = tuple(CertDigest(D.as_string(p[0], "digest.type"), D.as_octets(p[1], "digest.value"))
                        for p in pairs)
    else:
        raise SealMalformed(f"certListType {list_type} is neither 1 nor 2", field="certListType")
    return {
        "seal_type": seal_type,
        "name": D.as_string(f[1], "property.name"),
        "cert_list_type": list_type,
        "cert_list": certs,
        "cert_digests": digests,
        "create_date": D.as_time(dates[0], "property.createDate"),
        "valid_start": D.as_time(dates[1], "property.validStart"),
        "valid_end": D.as_time(dates[2], "property.validEnd"),
    }


def _parse_picture(tlv: D.Tlv) -> SealPicture:
    f = D.as_sequence(tlv, "picture")
    if len(f) != 4:
        raise SealMalformed(f"picture has {len(f)} fields, expected 4", field="picture")
    return SealPicture(D.as_string(f[0], "picture.type"), D.as_octets(f[1], "picture.data"),
                       D.as_int(f[2], "picture.width", 0, 10_000), D.as_int(f[3], "picture.height", 0, 10_000))


def _parse_ext_datas(tlv: D.Tlv) -> tuple[ExtData, ...]:
    if tlv.cls == D.CONTEXT:  # some encoders tag it [0], EXPLICIT or IMPLICIT
        items = tlv.children("extDatas")
        if len(items) == 1 and items[0].is_universal(D.TAG_SEQUENCE):
            inner = items[0].children("extDatas")
            if not (inner and inner[0].is_universal(D.TAG_OID)):  # not one bare ExtData: EXPLICIT
                items = inner
    else:
        items = D.as_sequence(tlv, "extDatas")
    out = []
    for item in items:
        f = D.as_sequence(item, "extData")
        if len(f) == 2:  # critical omitted (DEFAULT FALSE in some encoders)
            out.append(ExtData(D.as_oid(f[0], "extnID"), False, D.as_octets(f[1], "extnValue")))
        elif len(f) == 3:
            out.append(ExtData(D.as_oid(f[0], "extnID"), D.as_bool(f[1], "critical"),
                               D.as_octets(f[2], "extnValue")))
        else:
            raise SealMalformed("ExtData must be {extnID, critical, extnValue}", field="extDatas")
    return tuple(out)


# --- building ------------------------------------------------------------------------------------


def encode_seal(*, es_id: str, seal_type: int, name: str, cert_list_type: int, entries: list,
                create_date: dt.datetime, valid_start: dt.datetime, valid_end: dt.datetime,
                picture: SealPicture, maker: Signer, vid: str = DEFAULT_VID,
                ext_datas: tuple[ExtData, ...] = ()) -> bytes:
    """Encode and sign a v4 seal without validating content (the builder validates first).

    ``entries`` are DER certificates (cert_list_type 1) or :class:`CertDigest` (type 2).
    """
    if maker.certificate is None:
        raise InvalidInput("the seal maker's signer has no certificate", field="maker")
    from cryptography.hazmat.primitives.serialization import Encoding
    if cert_list_type == A.CERT_LIST_CERTS:
        cert_list = A.SESCertList(name="certs", value=A.CertInfoList(list(entries)))
    else:
        cert_list = A.SESCertList(name="cert_digest_list", value=A.CertDigestList(
            [A.CertDigestObj({"type": d.type, "value": d.value}) for d in entries]))
    info = {
        "header": A.SESHeader({"id": A.SEAL_HEADER_ID, "version": A.SEAL_VERSION_V4, "vid": vid}),
        "es_id": es_id,
        "property": A.SESESPropertyInfo({
            "type": seal_type, "name": name, "cert_list_type": cert_list_type, "cert_list": cert_list,
            "create_date": _whole_seconds(create_date), "valid_start": _whole_seconds(valid_start),
            "valid_end": _whole_seconds(valid_end)}),
        "picture": A.SESESPictrueInfo({"type": picture.type, "data": picture.data,
                                        "width": picture.width_mm, "height": picture.height_mm}),
    }
    if ext_datas:
        info["ext_datas"] = A.ExtensionDatas([A.ExtData({"extn_id": e.extn_id, "critical": e.critical,
                                                         "extn_value": e.value}) for e in ext_datas])
    info_der = A.SESSealInfo(info).dump()
    seal = A.SESeal({
        "e_seal_info": A.SESSealInfo.load(info_der),
        "cert": maker.certificate.public_bytes(Encoding.DER),
        "sign_alg_id": maker.algorithm.oid,
        "signed_value": maker.sign(info_der),
    })
    return seal.dump()


def _whole_seconds(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        raise InvalidInput("seal dates must be timezone-aware", field="date")
    return t.astimezone(dt.UTC).replace(microsecond=0)


@dataclass(frozen=True)
class SealBuilder:
    """Immutable description of a seal to make; :meth:`build` validates, signs, returns a Seal."""

    name: str = ""
    unit_code: str | None = None
    seal_type: int = A.UNIT_SEAL
    certificates: tuple[x509.Certificate, ...] = ()
    cert_list_type: int = A.CERT_LIST_CERTS
    picture_png: bytes | None = None
    width_mm: int = STANDARD_DIAMETER_MM
    height_mm: int = STANDARD_DIAMETER_MM
    valid_start: dt.datetime | None = None  # default: the latest notBefore of the certificates
    valid_end: dt.datetime | None = None  # default: the earliest notAfter of the certificates
    es_id: str | None = None
    vid: str = DEFAULT_VID
    ext_datas: tuple[ExtData, ...] = ()

    def with_unit(self, unit_code: str, name: str) -> SealBuilder:
        return dataclasses.replace(self, unit_code=unit_code, name=name)

    def with_certificate(self, cert: x509.Certificate) -> SealBuilder:
        return dataclasses.replace(self, certificates=(*self.certificates, cert))

    def with_picture(self, png: bytes, width_mm: int = STANDARD_DIAMETER_MM,
                     height_mm: int | None = None) -> SealBuilder:
        return dataclasses.replace(self, picture_png=png, width_mm=width_mm,
                                   height_mm=width_mm if height_mm is None else height_mm)

    def with_validity(self, start: dt.datetime, end: dt.datetime) -> SealBuilder:
        return dataclasses.replace(self, valid_start=start, valid_end=end)

    def with_es_id(self, es_id: str) -> SealBuilder:
        return dataclasses.replace(self, es_id=es_id)

    def with_digests(self) -> SealBuilder:
        """List the certificates by digest (certListType 2) instead of whole: SHA-256, or SM3 when the
        maker signs with SM2 (the 国密 profile)."""
        return dataclasses.replace(self, cert_list_type=A.CERT_LIST_DIGESTS)

    def build(self, maker: Signer, *, now: dt.datetime | None = None) -> Seal:
        from cryptography.hazmat.primitives.serialization import Encoding

        now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
        name = (self.name or "").strip()
        if not name or len(name) > 64:
            raise InvalidInput("seal name must be 1–64 characters", field="name")
        if self.seal_type not in (A.UNIT_SEAL, A.PERSONAL_SEAL):
            raise InvalidInput(f"seal type {self.seal_type} is neither 1 (unit) nor 2 (personal)", field="type")
        code = validate_unit_code(self.unit_code or "") if (
            self.unit_code or self.seal_type == A.UNIT_SEAL) else None
        if not self.certificates:
            raise InvalidInput("a seal lists at least one signer certificate", field="certificates")
        for cert in self.certificates:
            named = unit_code_of(cert)
            if code and named and named != code:
                raise InvalidInput(f"certificate names unit {named}, seal is for {code}", field="certificates")
        if self.picture_png is None:
            raise InvalidInput("a seal needs a picture (PNG)", field="picture")
        try:
            validate_png(self.picture_png)
        except SealPictureInvalid as exc:
            raise SealPictureInvalid(exc.message, field="picture") from None
        for side in (self.width_mm, self.height_mm):
            if not isinstance(side, int) or not 5 <= side <= 200:
                raise InvalidInput(f"picture size {side} mm must be 5–200 mm", field="picture")
        start = self.valid_start or max(c.not_valid_before_utc for c in self.certificates)
        end = self.valid_end or min(c.not_valid_after_utc for c in self.certificates)
        if start.tzinfo is None or end.tzinfo is None:
            raise InvalidInput("seal validity must be timezone-aware", field="validity")
        if end <= start:
            raise InvalidInput(f"seal validity ends ({end.isoformat()}) before it starts ({start.isoformat()})",
                               field="validity")
        for cert in self.certificates:
            if start < cert.not_valid_before_utc or end > cert.not_valid_after_utc:
                raise InvalidInput("seal validity must lie within its certificates' validity", field="validity",
                                   serial=f"{cert.serial_number:x}")
        es_id = self.es_id or f"{code or 'P'}{now:%Y%m%d}{secrets.token_hex(4).upper()}"
        if not es_id.isascii() or not es_id.isprintable() or len(es_id) > 64:
            raise InvalidInput("esID must be printable ASCII, at most 64 characters", field="esID")
        ders = [c.public_bytes(Encoding.DER) for c in self.certificates]
        sm = maker.algorithm.hash_name == "sm3"
        entries: list = ders if self.cert_list_type == A.CERT_LIST_CERTS else [
            CertDigest("SM3", sm3(d)) if sm else CertDigest("sha256", hashlib.sha256(d).digest()) for d in ders]
        der = encode_seal(es_id=es_id, seal_type=self.seal_type, name=name,
                          cert_list_type=self.cert_list_type, entries=entries, create_date=now,
                          valid_start=start, valid_end=end, picture=SealPicture(
                              "PNG", bytes(self.picture_png), self.width_mm, self.height_mm),
                          maker=maker, vid=self.vid, ext_datas=self.ext_datas)
        return parse_seal(der)


# --- presentation ----------------------------------------------------------------------------


SEAL_TYPE_NAMES = {A.UNIT_SEAL: "单位印章", A.PERSONAL_SEAL: "个人印章"}


def describe_seal(seal: Seal | bytes) -> dict:
    """A JSON-ready summary (Chinese kept as is: dump with ``ensure_ascii=False``)."""
    seal = parse_seal(seal)
    out: dict = {
        "format": seal.format,
        "header_version": seal.header_version,
        "vid": seal.vid,
        "es_id": seal.es_id,
        "seal_type": seal.seal_type,
        "seal_type_name": SEAL_TYPE_NAMES.get(seal.seal_type, "未知"),
        "name": seal.name,
        "unit_code": seal.unit_code,
        "create_date": seal.create_date.isoformat(),
        "valid_start": seal.valid_start.isoformat(),
        "valid_end": seal.valid_end.isoformat(),
        "picture": {"type": seal.picture.type, "bytes": len(seal.picture.data),
                    "width_mm": seal.picture.width_mm, "height_mm": seal.picture.height_mm},
        "sign_alg_oid": seal.sign_alg_oid,
        "cert_list_type": seal.cert_list_type,
    }
    try:
        maker = seal.maker_certificate
        out["maker"] = {"subject": maker.subject.rfc4514_string(), "serial": f"{maker.serial_number:x}"}
    except SealMalformed as exc:
        out["maker"] = {"error": exc.message}
    if seal.cert_list_type == A.CERT_LIST_CERTS:
        try:
            out["certificates"] = [
                {"subject": c.subject.rfc4514_string(), "serial": f"{c.serial_number:x}",
                 "not_before": c.not_valid_before_utc.isoformat(), "not_after": c.not_valid_after_utc.isoformat()}
                for c in seal.seal_certificates]
        except SealMalformed as exc:
            out["certificates"] = {"error": exc.message}
    else:
        out["certificate_digests"] = [{"type": d.type, "value": d.value.hex()} for d in seal.cert_digests]
    if seal.time_stamp is not None:
        out["time_stamp_bytes"] = len(seal.time_stamp)
    return out
