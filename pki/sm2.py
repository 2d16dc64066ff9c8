"""SM2 keys, signatures and encryption through OpenSSL 3's libcrypto (GB/T 32918, GM/T 0009).

pyca/cryptography bundles an OpenSSL built without SM2 keys (it has SM3 and SM4: ``pki.sm3_sm4``),
and no maintained Python binding signs with SM2 and a distinguishing id. So this module is a thin
cffi layer in ABI mode (``ffi.dlopen``, nothing compiled) over the system's ``libcrypto.so.3``:
the C does every curve operation, hash and random number; Python only moves bytes in and out and
turns failures into typed errors.

What it offers, and nothing else:

* :meth:`Sm2PrivateKey.generate`, PKCS#8 DER/PEM in and out — encrypted at rest with a passphrase
  (PBES2: PBKDF2-HMAC-SHA256, 100 000 iterations, 16-byte salt — this OpenSSL has no HMAC-SM3 PRF —
  and SM4-CBC, written by OpenSSL, so ``openssl pkey`` reads our key files) — and
  SubjectPublicKeyInfo DER in and out for :class:`Sm2PublicKey`;
* signatures with SM3 and a distinguishing id (default ``1234567812345678``, GM/T 0009), DER
  ``SEQUENCE{r, s}``: :meth:`Sm2PrivateKey.sign`, :meth:`Sm2PublicKey.verify`;
* SM2 encryption for key transport, DER ``SEQUENCE{x, y, hash C3, ciphertext C2}`` (the C1C3C2
  order of GM/T 0009): :meth:`Sm2PublicKey.encrypt`, :meth:`Sm2PrivateKey.decrypt`.

The key classes answer ``public_bytes``/``private_bytes`` with pyca's signature, so the keystore,
the signer and the certificate code take them where they take pyca keys.
"""

from __future__ import annotations

import base64

from asn1crypto import core, keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import serialization

from .errors import (
    BadSignature,
    DecryptionFailed,
    InvalidInput,
    KeyStoreError,
    MalformedEncoding,
    SigningFailed,
    UnsupportedAlgorithm,
    WrongPassphrase,
)
from .libcrypto import bio_bytes as _bio_bytes
from .libcrypto import ffi, lib, sm3_md
from .libcrypto import new_bio as _new_bio
from .libcrypto import openssl_error as _openssl_error

DEFAULT_ID = b"1234567812345678"  # GM/T 0009-2012 §10's default user id (distinguishing id)
CURVE_OID = "1.2.156.10197.1.301"
# asn1crypto reads SM2 keys inside certificates and PKCS#8 only once it knows the curve's size.
keys.NamedCurve.register("sm2p256v1", CURVE_OID, 32)

# Keys at rest, for every key type (pki.keystore uses these for P-256 and RSA keys too): PBES2 with
# PBKDF2-HMAC-SHA256 over a random 16-byte salt, 100 000 iterations — not OpenSSL's default 2048 and
# 8 bytes. HMAC-SM3 would suit the 国密 profile better, but this OpenSSL 3.0 offers no HMAC-SM3 PRF for
# PBKDF2 (`openssl pkcs8 -v2prf hmacWithSM3`: "Unknown PRF"); the cipher of an SM2 key is SM4-CBC.
KDF_ITERATIONS = 100_000
KDF_SALT_BYTES = 16
_PBE2_DEFAULT_PRF = -1  # PKCS8_encrypt's pbe_nid -1: PBES2 with the given cipher, PRF hmacWithSHA256


def _check_id(distinguishing_id: bytes) -> bytes:
    if not isinstance(distinguishing_id, bytes) or not 0 < len(distinguishing_id) <= 8191:
        # ENTL, the id's length in bits, is two bytes: an id past 8191 bytes cannot be hashed into Z.
        raise InvalidInput("an SM2 distinguishing id is 1 to 8191 bytes", field="distinguishing_id")
    return distinguishing_id


def _own(pkey) -> object:
    if pkey == ffi.NULL:
        raise MalformedEncoding(f"not an SM2 key: {_openssl_error()}")
    owned = ffi.gc(pkey, lib().EVP_PKEY_free)
    if not lib().EVP_PKEY_is_a(owned, b"SM2"):
        raise UnsupportedAlgorithm("the key is not an SM2 key (its curve is not SM2)")
    return owned


def _spki_der(pkey) -> bytes:
    """SubjectPublicKeyInfo DER of an SM2 ``EVP_PKEY`` (private or public)."""
    out = ffi.new("unsigned char **")
    n = lib().i2d_PUBKEY(pkey, out)
    if n <= 0:
        raise MalformedEncoding(f"cannot encode the SM2 public key: {_openssl_error()}")
    try:
        return bytes(ffi.buffer(out[0], n))
    finally:
        lib().CRYPTO_free(out[0], b"pki/sm2.py", 0)


def _d2i(decode, der: bytes):
    """``decode(NULL, &p, len)``, refusing bytes after the structure (d2i stops at its end)."""
    buf = ffi.new("unsigned char[]", der)
    pp = ffi.new("unsigned char **", buf)
    pkey = decode(ffi.NULL, ffi.cast("const unsigned char **", pp), len(der))
    if pkey != ffi.NULL and pp[0] - buf != len(der):
        lib().EVP_PKEY_free(pkey)
        raise MalformedEncoding("bytes follow the SM2 key's DER")
    return pkey


class Sm2PublicKey:
    """An SM2 public key (an ``EVP_PKEY`` held by OpenSSL)."""

    def __init__(self, pkey) -> None:
        self._pkey = pkey
        self._der: bytes | None = None

    @classmethod
    def from_der(cls, spki: bytes) -> Sm2PublicKey:
        """From SubjectPublicKeyInfo DER (id-ecPublicKey with the SM2 curve, as certificates carry it)."""
        if not isinstance(spki, bytes) or not spki:
            raise MalformedEncoding("an SM2 public key is SubjectPublicKeyInfo DER bytes")
        return cls(_own(_d2i(lib().d2i_PUBKEY, spki)))

    @classmethod
    def from_point(cls, point: bytes) -> Sm2PublicKey:
        """From the uncompressed point ``04 || x || y`` (what other SM2 libraries hand out)."""
        if not isinstance(point, bytes) or len(point) != 65 or point[0] != 4:
            raise MalformedEncoding("an uncompressed SM2 point is 65 bytes starting with 04")
        spki = keys.PublicKeyInfo({
            "algorithm": {"algorithm": "ec", "parameters": keys.ECDomainParameters(name="named", value=CURVE_OID)},
            "public_key": point})
        return cls.from_der(spki.dump())  # OpenSSL checks the point is on the curve

    def public_bytes(self, encoding: serialization.Encoding = serialization.Encoding.DER,
                     format: serialization.PublicFormat = serialization.PublicFormat.SubjectPublicKeyInfo,
                     ) -> bytes:
        if format is not serialization.PublicFormat.SubjectPublicKeyInfo:
            raise UnsupportedAlgorithm("an SM2 public key is written as SubjectPublicKeyInfo")
        der = self._spki()
        if encoding is serialization.Encoding.DER:
            return der
        if encoding is serialization.Encoding.PEM:
            return _pem("PUBLIC KEY", der)
        raise UnsupportedAlgorithm(f"cannot write an SM2 public key as {encoding}")

    def point(self) -> bytes:
        """The uncompressed point ``04 || x || y`` (65 bytes)."""
        buf = ffi.new("unsigned char[65]")
        n = ffi.new("size_t *")
        if lib().EVP_PKEY_get_octet_string_param(self._pkey, b"encoded-pub-key", buf, 65, n) != 1:
            raise MalformedEncoding(f"cannot read the SM2 public point: {_openssl_error()}")
        return bytes(ffi.buffer(buf, n[0]))

    def verify(self, signature: bytes, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> None:
        """Raise :class:`BadSignature` unless ``signature`` (DER r, s) is SM2/SM3 over ``data``."""
        if not isinstance(signature, bytes) or not isinstance(data, bytes):
            raise BadSignature("SM2 signature and data must be bytes", algorithm="sm2-sm3")
        if _digest_op(self._pkey, _check_id(distinguishing_id), data, signature) != 1:
            lib().ERR_clear_error()
            raise BadSignature("signature does not verify", algorithm="sm2-sm3")

    def encrypt(self, plaintext: bytes) -> bytes:
        """SM2 encryption (GM/T 0009 DER, C1C3C2): for key transport, a few dozen bytes at most."""
        if not isinstance(plaintext, bytes) or not plaintext:
            raise InvalidInput("SM2 encrypts 1 or more bytes", field="plaintext")
        return _crypt(self._pkey, plaintext, encrypt=True)

    def _spki(self) -> bytes:
        if self._der is None:  # encoded once: comparisons and hashing use it on every call
            self._der = _spki_der(self._pkey)
        return self._der

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sm2PublicKey) and self._spki() == other._spki()

    def __hash__(self) -> int:
        return hash(self._spki())


class Sm2PrivateKey:
    """An SM2 private key (an ``EVP_PKEY`` held by OpenSSL; its scalar never becomes a Python int)."""

    def __init__(self, pkey) -> None:
        self._pkey = pkey

    @classmethod
    def generate(cls) -> Sm2PrivateKey:
        c = lib()
        ctx = c.EVP_PKEY_CTX_new_from_name(ffi.NULL, b"SM2", ffi.NULL)
        if ctx == ffi.NULL:
            raise UnsupportedAlgorithm(f"this OpenSSL has no SM2: {_openssl_error()}")
        try:
            out = ffi.new("EVP_PKEY **")
            if c.EVP_PKEY_keygen_init(ctx) != 1 or c.EVP_PKEY_generate(ctx, out) != 1:
                raise UnsupportedAlgorithm(f"SM2 key generation failed: {_openssl_error()}")
        finally:
            c.EVP_PKEY_CTX_free(ctx)
        return cls(_own(out[0]))

    @classmethod
    def from_der(cls, pkcs8: bytes, passphrase: bytes | None = None) -> Sm2PrivateKey:
        """From PKCS#8 DER, plain or encrypted (then ``passphrase`` decrypts it)."""
        return cls(_read_private(pkcs8, passphrase, pem=False))

    @classmethod
    def from_pem(cls, data: bytes, passphrase: bytes | None = None) -> Sm2PrivateKey:
        return cls(_read_private(data, passphrase, pem=True))

    def public_key(self) -> Sm2PublicKey:
        return Sm2PublicKey.from_der(_spki_der(self._pkey))

    def private_bytes(self, encoding: serialization.Encoding, format: serialization.PrivateFormat,
                      encryption_algorithm: serialization.KeySerializationEncryption) -> bytes:
        """PKCS#8, DER or PEM; encrypted with PBES2/SM4-CBC when given ``BestAvailableEncryption``."""
        if format is not serialization.PrivateFormat.PKCS8:
            raise UnsupportedAlgorithm("an SM2 private key is written as PKCS#8")
        if isinstance(encryption_algorithm, serialization.BestAvailableEncryption):
            passphrase = encryption_algorithm.password
        elif isinstance(encryption_algorithm, serialization.NoEncryption):
            passphrase = None
        else:
            raise UnsupportedAlgorithm("an SM2 key is written plain or with BestAvailableEncryption")
        if encoding not in (serialization.Encoding.DER, serialization.Encoding.PEM):
            raise UnsupportedAlgorithm(f"cannot write an SM2 private key as {encoding}")
        c = lib()
        pem = encoding is serialization.Encoding.PEM
        bio = _new_bio()
        try:
            if passphrase is None:
                write = c.PEM_write_bio_PKCS8PrivateKey if pem else c.i2d_PKCS8PrivateKey_bio
                ok = write(bio, self._pkey, ffi.NULL, ffi.NULL, 0, ffi.NULL, ffi.NULL)
            else:
                ok = _write_encrypted(bio, self._pkey, _passphrase(passphrase), pem, c.EVP_sm4_cbc())
            if ok != 1:
                raise KeyStoreError(f"cannot write the SM2 key: {_openssl_error()}", code="PKI_KEY_MALFORMED")
            return _bio_bytes(bio)
        finally:
            c.BIO_free(bio)


    def scalar(self) -> bytes:
        """The private scalar, 32 bytes big-endian: for the tests' second SM2 implementation only."""
        bn = ffi.new("BIGNUM **")
        if lib().EVP_PKEY_get_bn_param(self._pkey, b"priv", bn) != 1:
            raise MalformedEncoding(f"cannot read the SM2 private scalar: {_openssl_error()}")
        try:
            out = ffi.new("unsigned char[32]")
            if lib().BN_bn2binpad(bn[0], out, 32) != 32:
                raise MalformedEncoding(f"the SM2 private scalar is not 32 bytes: {_openssl_error()}")
            return bytes(out)
        finally:
            lib().BN_free(bn[0])

    def sign(self, data: bytes, distinguishing_id: bytes = DEFAULT_ID) -> bytes:
        """SM2 signature with SM3 over ``data`` (Z from the id and the key, then e = SM3(Z || data))."""
        if not isinstance(data, bytes):
            raise InvalidInput("SM2 signs bytes", field="data")
        out = ffi.new("unsigned char[80]")  # DER of two 256-bit integers: at most 72 bytes
        n = ffi.new("size_t *", 80)
        if _digest_op(self._pkey, _check_id(distinguishing_id), data, None, out, n) != 1:
            raise SigningFailed(f"SM2 signing failed: {_openssl_error()}", algorithm="sm2-sm3")
        return bytes(ffi.buffer(out, n[0]))

    def decrypt(self, ciphertext: bytes) -> bytes:
        """Undo :meth:`Sm2PublicKey.encrypt`: bytes that are not GM/T 0009 DER are :class:`MalformedEncoding`,
        a well-formed ciphertext for another key or changed is :class:`DecryptionFailed`."""
        if not isinstance(ciphertext, bytes) or not ciphertext:
            raise MalformedEncoding("an SM2 ciphertext is DER bytes")
        try:
            parsed = _Sm2Ciphertext.load(ciphertext, strict=True)
            _ = parsed["x"].native, parsed["y"].native, parsed["hash"].native, parsed["ciphertext"].native
        except (ValueError, TypeError, KeyError) as exc:
            raise MalformedEncoding(f"not an SM2 ciphertext (GM/T 0009 DER): {exc}") from None
        return _crypt(self._pkey, ciphertext, encrypt=False)


class _Sm2Ciphertext(core.Sequence):
    """GM/T 0009's SM2 ciphertext, C1 (x, y), C3 (the SM3 hash), C2: parsed before decrypting, so bad
    encoding and a ciphertext for another key are told apart."""

    _fields = [("x", core.Integer), ("y", core.Integer), ("hash", core.OctetString),
               ("ciphertext", core.OctetString)]


def _digest_op(pkey, distinguishing_id: bytes, data: bytes, signature: bytes | None,
               out=None, outlen=None) -> int:
    """One SM2 sign (``signature`` None) or verify with SM3 and ``distinguishing_id``: OpenSSL's own
    recipe (EVP_PKEY_CTX_set1_id on a context handed to the digest context, then DigestSign/Verify)."""
    c = lib()
    mctx = c.EVP_MD_CTX_new()
    pctx = c.EVP_PKEY_CTX_new(pkey, ffi.NULL)
    try:
        if mctx == ffi.NULL or pctx == ffi.NULL:
            return 0
        if c.EVP_PKEY_CTX_set1_id(pctx, distinguishing_id, len(distinguishing_id)) != 1:
            return 0
        c.EVP_MD_CTX_set_pkey_ctx(mctx, pctx)
        if signature is None:
            if c.EVP_DigestSignInit(mctx, ffi.NULL, sm3_md(), ffi.NULL, pkey) != 1:
                return 0
            return c.EVP_DigestSign(mctx, out, outlen, data, len(data))
        if c.EVP_DigestVerifyInit(mctx, ffi.NULL, sm3_md(), ffi.NULL, pkey) != 1:
            return 0
        return c.EVP_DigestVerify(mctx, signature, len(signature), data, len(data))
    finally:
        if mctx != ffi.NULL:
            c.EVP_MD_CTX_free(mctx)  # does not free a context set with set_pkey_ctx…
        if pctx != ffi.NULL:
            c.EVP_PKEY_CTX_free(pctx)  # …so that one is freed here


def _crypt(pkey, data: bytes, *, encrypt: bool) -> bytes:
    c = lib()
    ctx = c.EVP_PKEY_CTX_new(pkey, ffi.NULL)
    if ctx == ffi.NULL:
        raise MalformedEncoding(f"SM2 context: {_openssl_error()}")
    try:
        init, op = ((c.EVP_PKEY_encrypt_init, c.EVP_PKEY_encrypt) if encrypt
                    else (c.EVP_PKEY_decrypt_init, c.EVP_PKEY_decrypt))
        n = ffi.new("size_t *")
        out = ffi.NULL
        if init(ctx) == 1 and op(ctx, ffi.NULL, n, data, len(data)) == 1:
            out = ffi.new("unsigned char[]", n[0])
            if op(ctx, out, n, data, len(data)) == 1:
                return bytes(ffi.buffer(out, n[0]))
        if encrypt:  # our key or library, never the caller's bytes
            raise SigningFailed(f"SM2 encryption failed: {_openssl_error()}", code="PKI_ENCRYPTION_FAILED")
        raise DecryptionFailed(f"the SM2 ciphertext does not decrypt with this key: it was made for another "
                               f"key or changed ({_openssl_error()})")
    finally:
        c.EVP_PKEY_CTX_free(ctx)


def _passphrase(passphrase: bytes) -> bytes:
    # OpenSSL's default password callback reads the passphrase as a C string.
    if not isinstance(passphrase, bytes) or b"\0" in passphrase:
        raise InvalidInput("a key passphrase is bytes without NUL", field="passphrase")
    return passphrase


def _read_private(data: bytes, passphrase: bytes | None, *, pem: bool):
    if not isinstance(data, bytes) or not data:
        raise MalformedEncoding("an SM2 private key is PKCS#8 bytes")
    encrypted = _encrypted_structure(data, pem) if pem or passphrase is not None else False
    if encrypted and passphrase is None:  # else OpenSSL's default callback would prompt on the terminal
        raise KeyStoreError("the SM2 key is encrypted and no passphrase was given", code="PKI_NO_PASSPHRASE")
    c = lib()
    if not pem and passphrase is None:  # plain PKCS#8 DER (d2i_PKCS8PrivateKey_bio reads only encrypted)
        pkey = _d2i(c.d2i_AutoPrivateKey, data)
    else:
        bio = c.BIO_new_mem_buf(data, len(data))
        if bio == ffi.NULL:
            raise MemoryError(f"OpenSSL could not allocate a memory BIO: {_openssl_error()}")
        try:
            u = _passphrase(passphrase) if passphrase is not None else ffi.NULL
            read = c.PEM_read_bio_PrivateKey if pem else c.d2i_PKCS8PrivateKey_bio
            pkey = read(bio, ffi.NULL, ffi.NULL, u)
        finally:
            c.BIO_free(bio)
    if pkey == ffi.NULL:
        detail = _openssl_error()
        if encrypted:  # the structure parsed (below): what fails now is the decryption
            raise WrongPassphrase(f"cannot decrypt the SM2 key: wrong passphrase ({detail})")
        raise MalformedEncoding(f"not an SM2 private key: {detail}")
    return _own(pkey)


def _write_encrypted(bio, pkey, passphrase: bytes, pem: bool, cipher) -> int:
    """EncryptedPrivateKeyInfo with our PBES2 parameters (KDF_ITERATIONS, KDF_SALT_BYTES, ``cipher``);
    OpenSSL draws the salt and IV. 1 when written, else 0 with OpenSSL's errors queued."""
    c = lib()
    info = c.EVP_PKEY2PKCS8(pkey)
    if info == ffi.NULL:
        return 0
    try:
        sealed = c.PKCS8_encrypt(_PBE2_DEFAULT_PRF, cipher, passphrase, len(passphrase), ffi.NULL,
                                 KDF_SALT_BYTES, KDF_ITERATIONS, info)
    finally:
        c.PKCS8_PRIV_KEY_INFO_free(info)
    if sealed == ffi.NULL:
        return 0
    try:
        return (c.PEM_write_bio_PKCS8 if pem else c.i2d_PKCS8_bio)(bio, sealed)
    finally:
        c.X509_SIG_free(sealed)


def encrypt_private_key(plain_pkcs8: bytes, passphrase: bytes) -> bytes:
    """Encrypted PKCS#8 PEM of a P-256 or RSA key (plain PKCS#8 DER from pyca), with the same PBES2
    parameters as SM2 keys and AES-256-CBC: pyca writes only OpenSSL's default 2048 iterations and
    8-byte salt, and takes no others for PKCS#8. pyca reads what this writes."""
    c = lib()
    pkey = _d2i(c.d2i_AutoPrivateKey, plain_pkcs8)
    if pkey == ffi.NULL:
        raise KeyStoreError(f"cannot encrypt the key: {_openssl_error()}", code="PKI_KEY_MALFORMED")
    bio = _new_bio()
    try:
        if _write_encrypted(bio, pkey, _passphrase(passphrase), True, c.EVP_aes_256_cbc()) != 1:
            raise KeyStoreError(f"cannot encrypt the key: {_openssl_error()}", code="PKI_KEY_MALFORMED")
        return _bio_bytes(bio)
    finally:
        c.BIO_free(bio)
        c.EVP_PKEY_free(pkey)


def _encrypted_structure(data: bytes, pem: bool) -> bool:
    """Whether ``data`` is an encrypted key, its EncryptedPrivateKeyInfo parsed before any decryption:
    a damaged or truncated file is then MalformedEncoding, and only a failure to decrypt a whole one
    is taken for a wrong passphrase. PEM that does not say ENCRYPTED is left to OpenSSL."""
    if pem:
        if b"ENCRYPTED" not in data:
            return False
        try:
            label, headers, der = asn1_pem.unarmor(data)
        except (ValueError, TypeError) as exc:
            raise MalformedEncoding(f"not an SM2 private key: the PEM does not decode ({exc})") from None
        if label != "ENCRYPTED PRIVATE KEY":  # a legacy Proc-Type: ENCRYPTED key; OpenSSL judges it
            return True
    else:
        der = data
    try:
        info = keys.EncryptedPrivateKeyInfo.load(der, strict=True)
        _ = info["encryption_algorithm"].native, info["encrypted_data"].native  # parsed here, not lazily later
    except (ValueError, TypeError, KeyError) as exc:
        raise MalformedEncoding(f"not an encrypted SM2 private key: the EncryptedPrivateKeyInfo is damaged "
                                f"or cut short ({exc})") from None
    return True


def _pem(label: str, der: bytes) -> bytes:
    body = base64.encodebytes(der).replace(b"\n", b"")
    lines = [body[i:i + 64] for i in range(0, len(body), 64)]
    return b"".join([f"-----BEGIN {label}-----\n".encode(), *(line + b"\n" for line in lines),
                     f"-----END {label}-----\n".encode()])
