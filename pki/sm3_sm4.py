"""SM3 digests and SM4 encryption (GB/T 32905, GB/T 32907), through pyca/cryptography.

pyca has both (its bundled OpenSSL implements them in C), so unlike SM2 (:mod:`pki.sm2`) they need
no binding of our own. SM4-GCM (12-byte nonce, 16-byte tag appended to the ciphertext, as
``cryptography``'s AEAD classes do it) is the content encryption of the 国密 profile; SM4-CBC with
PKCS#7 padding is there for peers and tools that know only CBC (``openssl enc -sm4-cbc``).
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .errors import DecryptionFailed, InvalidInput, MalformedEncoding

KEY_SIZE = 16
GCM_NONCE_SIZE = 12
GCM_TAG_SIZE = 16
BLOCK_SIZE = 16


def sm3(data: bytes) -> bytes:
    digest = hashes.Hash(hashes.SM3())
    digest.update(data)
    return digest.finalize()


def _check(key: bytes, iv: bytes, iv_size: int, what: str) -> None:
    if not isinstance(key, bytes) or len(key) != KEY_SIZE:
        raise InvalidInput(f"an SM4 key is {KEY_SIZE} bytes", field="key")
    if not isinstance(iv, bytes) or len(iv) != iv_size:
        raise InvalidInput(f"an SM4-{what} {'nonce' if what == 'GCM' else 'IV'} is {iv_size} bytes", field="iv")


def sm4_gcm_encrypt(key: bytes, nonce: bytes, plaintext: bytes, associated_data: bytes = b"") -> bytes:
    """Ciphertext followed by the 16-byte tag. Never reuse a nonce with the same key."""
    _check(key, nonce, GCM_NONCE_SIZE, "GCM")
    enc = Cipher(algorithms.SM4(key), modes.GCM(nonce)).encryptor()
    enc.authenticate_additional_data(associated_data)
    return enc.update(plaintext) + enc.finalize() + enc.tag


def sm4_gcm_decrypt(key: bytes, nonce: bytes, data: bytes, associated_data: bytes = b"") -> bytes:
    """The plaintext, or :class:`DecryptionFailed` when the tag does not match (changed, or another key)."""
    _check(key, nonce, GCM_NONCE_SIZE, "GCM")
    if len(data) < GCM_TAG_SIZE:
        raise MalformedEncoding("SM4-GCM data shorter than its tag", algorithm="sm4-gcm")
    dec = Cipher(algorithms.SM4(key), modes.GCM(nonce, data[-GCM_TAG_SIZE:])).decryptor()
    dec.authenticate_additional_data(associated_data)
    try:
        return dec.update(data[:-GCM_TAG_SIZE]) + dec.finalize()
    except InvalidTag:
        raise DecryptionFailed("SM4-GCM tag does not match: the data was changed or the key is wrong",
                               algorithm="sm4-gcm") from None


def sm4_cbc_encrypt(key: bytes, iv: bytes, plaintext: bytes) -> bytes:
    """SM4-CBC with PKCS#7 padding (not authenticated: pair it with a signature)."""
    _check(key, iv, BLOCK_SIZE, "CBC")
    padder = padding.PKCS7(128).padder()
    padded = padder.update(plaintext) + padder.finalize()
    enc = Cipher(algorithms.SM4(key), modes.CBC(iv)).encryptor()
    return enc.update(padded) + enc.finalize()


def sm4_cbc_decrypt(key: bytes, iv: bytes, ciphertext: bytes) -> bytes:
    _check(key, iv, BLOCK_SIZE, "CBC")
    if not ciphertext or len(ciphertext) % BLOCK_SIZE:
        raise InvalidInput("SM4-CBC ciphertext is a whole number of 16-byte blocks", field="ciphertext")
    dec = Cipher(algorithms.SM4(key), modes.CBC(iv)).decryptor()
    padded = dec.update(ciphertext) + dec.finalize()
    unpadder = padding.PKCS7(128).unpadder()
    try:
        return unpadder.update(padded) + unpadder.finalize()
    except ValueError:
        raise InvalidInput("SM4-CBC padding is wrong: another key or a changed ciphertext",
                           field="ciphertext") from None
