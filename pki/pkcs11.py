"""A :class:`~pki.signer.Signer` whose private key never leaves a PKCS#11 token.

Signatures come out in exactly the encoding :class:`~pki.signer.SoftwareSigner` produces, so
verifiers cannot tell them apart: ECDSA P-256 is computed with ``CKM_ECDSA`` over a SHA-256
digest taken in Python (every token supports raw ECDSA; not all support ``CKM_ECDSA_SHA256``),
and the token's raw ``r || s`` is re-encoded as DER ``SEQUENCE{r, s}``; RSA uses
``CKM_SHA256_RSA_PKCS``.

Three PKCS#11 facts shape the code:

* A module (``.so``) is initialised once per process; python-pkcs11 caches it by path, so paths
  are normalised with ``realpath`` before loading — two spellings of one path would otherwise
  make the second ``C_Initialize`` fail.
* Login state belongs to the *application*, not the session: a second ``C_Login`` on the same
  token fails with "already logged in", and ``C_Logout`` on any session logs out all of them.
  So logins are reference-counted per (module, token) in :class:`_Logins`: the first user logs in
  on a dedicated session, every signer works on its own PIN-less session (which inherits the
  login), and the last one out logs out. A consequence: while a token is logged in, a second
  signer's PIN is not re-checked by the token.
* A session must not run two operations at once, so each signer serialises its token calls
  with a lock; sessions are opened lazily, reused, and re-opened once if the token reports the
  session gone (e.g. the token was re-inserted).

Token errors are mapped to typed errors (``PKI_HSM_*``); the PIN never appears in a message,
a ``repr`` or ``details``.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import pkcs11
from asn1crypto.core import OctetString
from asn1crypto.keys import ECDomainParameters
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11 import exceptions as p11e
from pkcs11.util.ec import encode_named_curve_parameters

from .algorithms import DEFAULT, PublicKey, SignatureAlgorithm, for_public_key
from .errors import (
    BadSignature,
    HsmBadPin,
    HsmError,
    HsmKeyAmbiguous,
    HsmKeyExists,
    HsmKeyNotFound,
    HsmSm2Unsupported,
    HsmTokenNotFound,
    InvalidInput,
    KeyCertificateMismatch,
    UnsupportedAlgorithm,
)
from .signer import Signer
from .sm2 import CURVE_OID as SM2_CURVE_OID
from .sm2 import Sm2PublicKey
from .x509_sm2 import public_key_of

_PIN_ERRORS = (p11e.PinIncorrect, p11e.PinInvalid, p11e.PinLenRange, p11e.PinLocked, p11e.PinExpired)
# Errors after which the session (or the login behind it) is gone and a fresh one may work.
_SESSION_LOST = (p11e.SessionHandleInvalid, p11e.SessionClosed, p11e.UserNotLoggedIn,
                 p11e.DeviceRemoved, p11e.TokenNotPresent)
_SESSION_ONLY_LOST = (p11e.SessionHandleInvalid, p11e.SessionClosed)  # the login itself is intact


@contextlib.contextmanager
def _token_errors(action: str, **details: object) -> Iterator[None]:
    """Translate python-pkcs11 exceptions raised during ``action`` into typed gwx errors."""
    try:
        yield
    except HsmError:
        raise
    except _PIN_ERRORS as exc:
        locked = isinstance(exc, p11e.PinLocked)
        raise HsmBadPin(f"{action}: token PIN {'locked' if locked else 'rejected'}",
                        pkcs11_error=type(exc).__name__, **details) from None
    except p11e.NoSuchToken:
        raise HsmTokenNotFound(f"{action}: no such token", **details) from None
    except p11e.NoSuchKey:
        raise HsmKeyNotFound(f"{action}: no such key on the token", **details) from None
    except p11e.MultipleObjectsReturned:
        raise HsmKeyAmbiguous(f"{action}: several keys match; use a unique label or the key id", **details) from None
    except p11e.PKCS11Error as exc:
        raise HsmError(f"{action}: {type(exc).__name__} {exc}".rstrip(),
                       pkcs11_error=type(exc).__name__, **details) from None


_module_lock = threading.Lock()


def load_module(module_path: str | os.PathLike[str]) -> pkcs11.lib:
    """Load (once per process) and initialise the PKCS#11 module at ``module_path``."""
    path = os.path.realpath(os.fspath(module_path))
    if not os.path.isfile(path):
        raise HsmError(f"PKCS#11 module {path} does not exist", module=path)
    with _module_lock, _token_errors("loading PKCS#11 module", module=path):
        return pkcs11.lib(path)


class _Logins:
    """Reference-counted user logins per (module, token); see the module docstring for why."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [login session or None if logged in by someone outside gwx, reference count]
        self._held: dict[tuple[str, str], list] = {}

    def acquire(self, module: pkcs11.lib, token: pkcs11.Token, pin: str) -> None:
        key = (module.so, token.label)
        with self._lock:
            held = self._held.get(key)
            if held is not None:
                held[1] += 1
                return
            try:
                session = token.open(user_pin=pin)
            except p11e.UserAlreadyLoggedIn:
                session = None  # logged in by code outside this registry; never log it out
            self._held[key] = [session, 1]

    def release(self, module: pkcs11.lib, token: pkcs11.Token, *, forget: bool = False) -> None:
        """Drop one reference; log out with the last. ``forget`` drops a login the token lost."""
        key = (module.so, token.label)
        with self._lock:
            held = self._held.get(key)
            if held is None:
                return
            held[1] -= 1
            if held[1] > 0 and not forget:
                return
            del self._held[key]
            if held[0] is not None:
                with contextlib.suppress(p11e.PKCS11Error):
                    held[0].close()


_logins = _Logins()


@contextlib.contextmanager
def _user_session(module: pkcs11.lib, token: pkcs11.Token, pin: str, *, rw: bool) -> Iterator[pkcs11.Session]:
    """A short-lived logged-in session (key generation, one-off look-ups)."""
    _logins.acquire(module, token, pin)
    try:
        session = token.open(rw=rw)
        try:
            yield session
        finally:
            with contextlib.suppress(p11e.PKCS11Error):
                session.close()
    finally:
        _logins.release(module, token)


def _key_template(key_label: str | None, key_id: bytes | None) -> dict[Attribute, object]:
    attrs: dict[Attribute, object] = {}
    if key_label is not None:
        attrs[Attribute.LABEL] = key_label
    if key_id is not None:
        attrs[Attribute.ID] = key_id
    return attrs


def _find_one(session: pkcs11.Session, object_class: ObjectClass, template: dict) -> pkcs11.Object | None:
    found = list(session.get_objects({Attribute.CLASS: object_class, **template}))
    if len(found) > 1:
        raise p11e.MultipleObjectsReturned()
    return found[0] if found else None


def _ec_public_key(params: bytes, point: bytes) -> ec.EllipticCurvePublicKey:
    domain = ECDomainParameters.load(params)
    if domain.name != "named":
        raise UnsupportedAlgorithm("token EC key uses explicit curve parameters; only named curves are supported")
    if domain.chosen.dotted == SM2_CURVE_OID:
        # A token will make an EC key on the SM2 curve and sign with CKM_ECDSA: that is ECDSA, which
        # no SM2 verifier accepts, so the key is refused before anything is signed with it.
        raise HsmSm2Unsupported("the token key is on the SM2 curve, and no PKCS#11 mechanism this token offers "
                                "makes an SM2 (GB/T 32918) signature", code="PKI_HSM_SM2_UNSUPPORTED")
    curve = ec.get_curve_for_oid(x509.ObjectIdentifier(domain.chosen.dotted))
    # PKCS#11 says CKA_EC_POINT is a DER OCTET STRING, some tokens store the bare point.
    with contextlib.suppress(ValueError):
        inner = OctetString.load(point, strict=True).native
        if inner[:1] in (b"\x02", b"\x03", b"\x04"):
            point = inner
    return ec.EllipticCurvePublicKey.from_encoded_point(curve(), point)


def _public_key_of(obj: pkcs11.Object) -> PublicKey | None:
    """The public key held in a token public-key object (or an RSA private key's public half)."""
    key_type = obj[Attribute.KEY_TYPE]
    if key_type == KeyType.EC:
        if obj.object_class != ObjectClass.PUBLIC_KEY:
            return None  # private EC objects carry no point
        return _ec_public_key(obj[Attribute.EC_PARAMS], obj[Attribute.EC_POINT])
    if key_type == KeyType.RSA:
        n = int.from_bytes(obj[Attribute.MODULUS], "big")
        e = int.from_bytes(obj[Attribute.PUBLIC_EXPONENT], "big")
        return rsa.RSAPublicNumbers(e, n).public_key()
    raise UnsupportedAlgorithm(f"token key type {key_type!r} is not supported")


def _same_key(a: PublicKey, b: PublicKey) -> bool:
    fmt = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return a.public_bytes(*fmt) == b.public_bytes(*fmt)


class Pkcs11Signer(Signer):
    """Signs with a private key held on a PKCS#11 token, found by label and/or id.

    Nothing touches the token until the first use (or :meth:`open` / ``with``). One session is
    opened and reused; calls are serialised with a lock, so one signer may be shared between
    threads. :meth:`close` ends the session (and the login, if this was its last user).
    """

    def __init__(self, module_path: str | os.PathLike[str], token_label: str, pin: str,
                 key_label: str | None = None, *, key_id: bytes | None = None,
                 certificate: x509.Certificate | None = None) -> None:
        if key_label is None and key_id is None:
            raise InvalidInput("a token key needs a label or an id", field="key_label")
        self._module_path = os.fspath(module_path)
        self._token_label = token_label
        self.__pin = pin
        self._template = _key_template(key_label, key_id)
        self._certificate = certificate
        self._lock = threading.RLock()
        self._module: pkcs11.lib | None = None
        self._token: pkcs11.Token | None = None
        self._session: pkcs11.Session | None = None
        self._private_key: pkcs11.PrivateKey | None = None
        self._public_key: PublicKey | None = None
        self._algorithm: SignatureAlgorithm | None = None
        self._closed = False
        self._pin_refused: HsmBadPin | None = None  # the token said no to this PIN once: never again

    def __repr__(self) -> str:
        key = self._template.get(Attribute.LABEL) or self._template[Attribute.ID].hex()
        return f"<Pkcs11Signer token={self._token_label!r} key={key!r}>"

    def _details(self) -> dict[str, object]:
        return {"token": self._token_label, "key": self._template.get(Attribute.LABEL),
                "key_id": (self._template.get(Attribute.ID) or b"").hex() or None}

    # -- lifecycle ---------------------------------------------------------------------------

    def open(self) -> Pkcs11Signer:
        """Log in, find the key and read its public half now (instead of at first use)."""
        with self._lock:
            self._ensure_open()
        return self

    def _ensure_open(self) -> pkcs11.PrivateKey:
        if self._closed:
            raise HsmError("signer is closed", code="PKI_HSM_CLOSED", **self._details())
        if self._private_key is not None:
            return self._private_key
        details = self._details()
        if self._pin_refused is not None:
            raise HsmBadPin(f"{self._pin_refused.message} (not tried again: each try spends one of the token's "
                            "retries; fix the PIN and reload)", **self._pin_refused.details)
        if self._module is None:
            self._module = load_module(self._module_path)
        try:
            with _token_errors("opening token", **details):
                self._token = self._module.get_token(token_label=self._token_label)
                _logins.acquire(self._module, self._token, self.__pin)
        except HsmBadPin as exc:
            self._pin_refused = exc
            raise
        try:
            with _token_errors("finding key", **details):
                self._session = self._token.open()
                private = _find_one(self._session, ObjectClass.PRIVATE_KEY, self._template)
                if private is None:
                    raise HsmKeyNotFound("no private key with this label/id on the token", **details)
                public_obj = _find_one(self._session, ObjectClass.PUBLIC_KEY, self._template)
                public = _public_key_of(public_obj if public_obj is not None else private)
                self._algorithm = for_public_key(public) if public is not None else None
                self._private_key = private
                self._public_key = public
                self._check_certificate()
        except BaseException:
            self._drop_session()
            raise
        return private

    def _check_certificate(self) -> None:
        cert = self._certificate
        if cert is not None and isinstance(public_key_of(cert), Sm2PublicKey):
            raise HsmSm2Unsupported("the certificate is for an SM2 key, which a PKCS#11 token cannot sign with "
                                    "here", code="PKI_HSM_SM2_UNSUPPORTED", **self._details())
        if self._public_key is None:
            # An EC key whose public object was deleted: trust the certificate only after the
            # token has proven it holds the matching private key.
            if cert is None:
                raise HsmKeyNotFound("the token has no public key for this key and no certificate was given",
                                     **self._details())
            self._public_key = cert.public_key()  # type: ignore[assignment]
            self._algorithm = for_public_key(self._public_key)
            probe = os.urandom(32)
            try:
                self._algorithm.verify(self._public_key, self._sign_once(probe), probe)
            except BadSignature:
                self._public_key = None
                raise KeyCertificateMismatch("certificate does not belong to the token key",
                                             **self._details()) from None
            return
        if cert is not None and not _same_key(cert.public_key(), self._public_key):  # type: ignore[arg-type]
            raise KeyCertificateMismatch(
                f"certificate {cert.subject.rfc4514_string()} does not certify the token key",
                serial=cert.serial_number, **self._details())

    def _drop_session(self, *, login_lost: bool = False) -> None:
        if self._session is not None:
            with contextlib.suppress(p11e.PKCS11Error):
                self._session.close()
        if self._token is not None and self._module is not None:
            _logins.release(self._module, self._token, forget=login_lost)
        self._session = self._private_key = self._token = None

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._drop_session()
                self._closed = True

    def __enter__(self) -> Pkcs11Signer:
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- Signer ------------------------------------------------------------------------------

    @property
    def algorithm(self) -> SignatureAlgorithm:
        if self._algorithm is None:  # known once read; still readable after close()
            self.open()
        assert self._algorithm is not None
        return self._algorithm

    @property
    def public_key(self) -> PublicKey:
        if self._public_key is None:  # known once read; still readable after close()
            self.open()
        assert self._public_key is not None
        return self._public_key

    @property
    def certificate(self) -> x509.Certificate | None:
        return self._certificate

    def with_certificate(self, certificate: x509.Certificate) -> Pkcs11Signer:
        """Attach a certificate (e.g. just issued for this key); checked against the token key."""
        with self._lock:
            self._ensure_open()
            previous, self._certificate = self._certificate, certificate
            try:
                self._check_certificate()
            except KeyCertificateMismatch:
                self._certificate = previous
                raise
        return self

    def sign(self, data: bytes) -> bytes:
        with self._lock:
            self._ensure_open()
            with _token_errors("signing", **self._details()):
                try:
                    return self._sign_once(data)
                except _SESSION_LOST as exc:
                    # Token re-inserted or login dropped: one fresh session, then give up.
                    self._drop_session(login_lost=not isinstance(exc, _SESSION_ONLY_LOST))
                    self._ensure_open()
                    return self._sign_once(data)

    def _sign_once(self, data: bytes) -> bytes:
        key = self._private_key
        assert key is not None and self._algorithm is not None
        if self._algorithm.key_type == "ec":
            if self._algorithm.hash_name != "sha256":
                raise UnsupportedAlgorithm(f"{self._algorithm.name} is not supported on tokens")
            raw = key.sign(hashlib.sha256(data).digest(), mechanism=Mechanism.ECDSA)
            half = len(raw) // 2
            return encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
        if self._algorithm.key_type == "rsa" and self._algorithm.hash_name == "sha256":
            return key.sign(data, mechanism=Mechanism.SHA256_RSA_PKCS)
        raise UnsupportedAlgorithm(f"{self._algorithm.name} is not supported on tokens")


def delete_token_key(module_path: str | os.PathLike[str], token_label: str, pin: str, key_label: str) -> int:
    """Destroy the key pair labelled ``key_label`` on the token (a key made for a request that then
    failed); returns how many objects went."""
    details = {"token": token_label, "key": key_label}
    module = load_module(module_path)
    with _token_errors("deleting key pair", **details):
        token = module.get_token(token_label=token_label)
        with _user_session(module, token, pin, rw=True) as session:
            found = list(session.get_objects({Attribute.LABEL: key_label}))
            for obj in found:
                obj.destroy()
    return len(found)


@dataclass(frozen=True)
class TokenKey:
    """What :func:`generate_keypair_on_token` made: how to find the key again, and its public half."""

    key_label: str
    key_id: bytes
    public_key: PublicKey


def generate_keypair_on_token(module_path: str | os.PathLike[str], token_label: str, pin: str,
                              key_label: str, algorithm: SignatureAlgorithm = DEFAULT, *,
                              key_id: bytes | None = None) -> TokenKey:
    """Generate a non-extractable signing key pair on the token; refuse to shadow an existing key.

    ``key_id`` defaults to 16 random bytes (CKA_ID is how most tools pair a key with its
    certificate on the token).
    """
    if algorithm.key_type == "ec":
        gen_args: dict[str, object] = {}
        curve_oid = "secp256r1"
    elif algorithm.key_type == "rsa":
        gen_args = {"key_length": 3072}
        curve_oid = ""
    elif algorithm.key_type == "sm2":
        raise HsmSm2Unsupported("cannot make an SM2 key on a PKCS#11 token: no mechanism signs SM2 with it",
                                code="PKI_HSM_SM2_UNSUPPORTED", token=token_label, key=key_label)
    else:
        raise UnsupportedAlgorithm(f"cannot generate {algorithm.name} keys on a token")
    key_id = key_id if key_id is not None else os.urandom(16)
    details = {"token": token_label, "key": key_label}
    module = load_module(module_path)
    with _token_errors("generating key pair", **details):
        token = module.get_token(token_label=token_label)
        with _user_session(module, token, pin, rw=True) as session:
            for template in ({Attribute.LABEL: key_label}, {Attribute.ID: key_id}):
                if list(session.get_objects(template)):
                    raise HsmKeyExists("the token already has an object with this label or id", **details)
            private_template = {Attribute.SENSITIVE: True, Attribute.EXTRACTABLE: False,
                                Attribute.PRIVATE: True, Attribute.SIGN: True,
                                Attribute.DECRYPT: False, Attribute.UNWRAP: False, Attribute.DERIVE: False}
            public_template = {Attribute.VERIFY: True, Attribute.ENCRYPT: False, Attribute.WRAP: False}
            common = {"store": True, "label": key_label, "id": key_id,
                      "public_template": public_template, "private_template": private_template}
            if curve_oid:
                params = session.create_domain_parameters(
                    KeyType.EC, {Attribute.EC_PARAMS: encode_named_curve_parameters(curve_oid)}, local=True)
                public, _ = params.generate_keypair(**common)
            else:
                public, _ = session.generate_keypair(KeyType.RSA, **gen_args, **common)
            public_key = _public_key_of(public)
    assert public_key is not None
    return TokenKey(key_label=key_label, key_id=key_id, public_key=public_key)
