"""The system's libcrypto (OpenSSL 3) through cffi in ABI mode: the declarations gwx uses, the library
opened once, and the helpers every caller needs — OpenSSL's error queue as text, memory BIOs.

pyca/cryptography bundles an OpenSSL without SM2 keys, so :mod:`pki.sm2` speaks to this one; nothing is
compiled (``ffi.dlopen``). Only this module declares C functions.
"""

from __future__ import annotations

import threading

from cffi import FFI

from .errors import KeyStoreError, UnsupportedAlgorithm

_CDEF = """
typedef struct evp_pkey_st EVP_PKEY;
typedef struct evp_pkey_ctx_st EVP_PKEY_CTX;
typedef struct evp_md_ctx_st EVP_MD_CTX;
typedef struct evp_md_st EVP_MD;
typedef struct evp_cipher_st EVP_CIPHER;
typedef struct bio_st BIO;
typedef struct bio_method_st BIO_METHOD;
typedef struct bignum_st BIGNUM;
typedef struct pkcs8_priv_key_info_st PKCS8_PRIV_KEY_INFO;
typedef struct X509_sig_st X509_SIG;

EVP_PKEY_CTX *EVP_PKEY_CTX_new_from_name(void *libctx, const char *name, const char *propquery);
EVP_PKEY_CTX *EVP_PKEY_CTX_new(EVP_PKEY *pkey, void *engine);
void EVP_PKEY_CTX_free(EVP_PKEY_CTX *ctx);
int EVP_PKEY_keygen_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_generate(EVP_PKEY_CTX *ctx, EVP_PKEY **ppkey);
void EVP_PKEY_free(EVP_PKEY *pkey);
int EVP_PKEY_is_a(const EVP_PKEY *pkey, const char *name);
int EVP_PKEY_CTX_set1_id(EVP_PKEY_CTX *ctx, const void *id, int len);
int EVP_PKEY_get_bn_param(const EVP_PKEY *pkey, const char *key_name, BIGNUM **bn);
int EVP_PKEY_get_octet_string_param(const EVP_PKEY *pkey, const char *key_name, unsigned char *buf,
                                    size_t max_buf_sz, size_t *out_len);

EVP_MD_CTX *EVP_MD_CTX_new(void);
void EVP_MD_CTX_free(EVP_MD_CTX *ctx);
void EVP_MD_CTX_set_pkey_ctx(EVP_MD_CTX *ctx, EVP_PKEY_CTX *pctx);
EVP_MD *EVP_MD_fetch(void *libctx, const char *algorithm, const char *properties);
int EVP_DigestSignInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, void *e, EVP_PKEY *pkey);
int EVP_DigestSign(EVP_MD_CTX *ctx, unsigned char *sigret, size_t *siglen,
                   const unsigned char *tbs, size_t tbslen);
int EVP_DigestVerifyInit(EVP_MD_CTX *ctx, EVP_PKEY_CTX **pctx, const EVP_MD *type, void *e, EVP_PKEY *pkey);
int EVP_DigestVerify(EVP_MD_CTX *ctx, const unsigned char *sigret, size_t siglen,
                     const unsigned char *tbs, size_t tbslen);

int EVP_PKEY_encrypt_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_encrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                     const unsigned char *in, size_t inlen);
int EVP_PKEY_decrypt_init(EVP_PKEY_CTX *ctx);
int EVP_PKEY_decrypt(EVP_PKEY_CTX *ctx, unsigned char *out, size_t *outlen,
                     const unsigned char *in, size_t inlen);

EVP_PKEY *d2i_PUBKEY(EVP_PKEY **a, const unsigned char **pp, long length);
int i2d_PUBKEY(const EVP_PKEY *a, unsigned char **pp);
void CRYPTO_free(void *ptr, const char *file, int line);

const BIO_METHOD *BIO_s_mem(void);
BIO *BIO_new(const BIO_METHOD *type);
BIO *BIO_new_mem_buf(const void *buf, int len);
long BIO_ctrl(BIO *bp, int cmd, long larg, void *parg);
int BIO_free(BIO *a);
const EVP_CIPHER *EVP_sm4_cbc(void);
const EVP_CIPHER *EVP_aes_256_cbc(void);
int i2d_PKCS8PrivateKey_bio(BIO *bp, const EVP_PKEY *x, const EVP_CIPHER *enc,
                            const char *kstr, int klen, void *cb, void *u);
int PEM_write_bio_PKCS8PrivateKey(BIO *bp, const EVP_PKEY *x, const EVP_CIPHER *enc,
                                  const char *kstr, int klen, void *cb, void *u);
PKCS8_PRIV_KEY_INFO *EVP_PKEY2PKCS8(const EVP_PKEY *pkey);
void PKCS8_PRIV_KEY_INFO_free(PKCS8_PRIV_KEY_INFO *a);
X509_SIG *PKCS8_encrypt(int pbe_nid, const EVP_CIPHER *cipher, const char *pass, int passlen,
                        unsigned char *salt, int saltlen, int iter, PKCS8_PRIV_KEY_INFO *p8);
void X509_SIG_free(X509_SIG *a);
int i2d_PKCS8_bio(BIO *bp, const X509_SIG *p8);
int PEM_write_bio_PKCS8(BIO *bp, const X509_SIG *x);
EVP_PKEY *d2i_PKCS8PrivateKey_bio(BIO *bp, EVP_PKEY **x, void *cb, void *u);
EVP_PKEY *PEM_read_bio_PrivateKey(BIO *bp, EVP_PKEY **x, void *cb, void *u);
EVP_PKEY *d2i_AutoPrivateKey(EVP_PKEY **a, const unsigned char **pp, long length);

int BN_bn2binpad(const BIGNUM *a, unsigned char *to, int tolen);
void BN_free(BIGNUM *a);
unsigned long ERR_get_error(void);
void ERR_error_string_n(unsigned long e, char *buf, size_t len);
void ERR_clear_error(void);
"""

_BIO_CTRL_INFO = 3  # BIO_get_mem_data is the macro BIO_ctrl(b, BIO_CTRL_INFO, 0, (char **)pp)



class _DeclaredOnUse:
    """cffi's FFI with the declarations above, made on first use: making an FFI imports pycparser and
    parsing the declarations runs it (~50 ms of CPU), which a process that never touches this library
    (a P-256 node, most gwx commands) would pay at every start."""

    _made: FFI | None = None

    def __getattr__(self, name: str):
        made = _DeclaredOnUse._made
        if made is None:
            with _declaring:
                if _DeclaredOnUse._made is None:
                    declared = FFI()
                    declared.cdef(_CDEF)
                    _DeclaredOnUse._made = declared
                made = _DeclaredOnUse._made
        return getattr(made, name)


_declaring = threading.Lock()  # not _lock: lib() holds that while it first uses ffi
_lock = threading.Lock()
ffi = _DeclaredOnUse()
_lib = None
_sm3 = None  # SM3 fetched once: the implicit fetch behind EVP_sm3() cost a third of every signature


def lib():
    """libcrypto, opened on first use (a machine without it fails only where SM2 is asked for)."""
    global _lib, _sm3
    if _lib is None:
        with _lock:
            if _lib is None:
                try:
                    opened = ffi.dlopen("libcrypto.so.3")
                except OSError as exc:
                    raise UnsupportedAlgorithm(f"SM2 needs OpenSSL 3's libcrypto.so.3: {exc}") from None
                _sm3 = opened.EVP_MD_fetch(ffi.NULL, b"SM3", ffi.NULL)  # kept for the process's life
                if _sm3 == ffi.NULL:
                    raise UnsupportedAlgorithm("this OpenSSL has no SM3")
                _lib = opened
    return _lib


def openssl_error() -> str:
    """Every error OpenSSL queued, earliest first, as text (and the queue emptied, so a later call starts
    clean): the earliest is often the least specific ("processing error"), the reason comes last."""
    c = lib()
    buf = ffi.new("char[256]")
    found = []
    while code := c.ERR_get_error():
        c.ERR_error_string_n(code, buf, 256)
        found.append(ffi.string(buf).decode("ascii", "replace"))
    return "; ".join(found) or "no detail"


def sm3_md():
    """SM3, fetched once when the library was opened."""
    lib()
    return _sm3



def new_bio():
    bio = lib().BIO_new(lib().BIO_s_mem())
    if bio == ffi.NULL:
        raise MemoryError(f"OpenSSL could not allocate a memory BIO: {openssl_error()}")
    return bio


def bio_bytes(bio) -> bytes:
    pp = ffi.new("char **")
    n = lib().BIO_ctrl(bio, _BIO_CTRL_INFO, 0, pp)
    if n < 0 or (n > 0 and pp[0] == ffi.NULL):
        raise KeyStoreError(f"cannot read OpenSSL's output buffer: {openssl_error()}", code="PKI_KEY_MALFORMED")
    return bytes(ffi.buffer(pp[0], n))
