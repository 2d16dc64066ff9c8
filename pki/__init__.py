"""gwx's public-key infrastructure: certificates, electronic seals, signatures, revocation, time.

Pure builders and validators: bytes, keys (behind :class:`pki.signer.Signer`) and the current time
in, values out or typed errors (:mod:`pki.errors`). I/O only where a CA directory, a key file or a
token is the point (``ca``, ``keystore``, ``seal_store``, ``pkcs11``); nothing here fetches from the
network — revocation data is handed in.

Modules and what each one owns:

- ``errors``: the typed errors (:class:`GwxError` is the base of every gwx error).
- ``algorithms``: signature algorithms by name, so no format hard-codes one.
- ``signer``: the :class:`Signer` interface and software keys; ``pkcs11``: keys on a PKCS#11 token.
- ``keystore``: private keys at rest — encrypted PKCS#8, mode 0600, temp + fsync + rename.
- ``profiles``: what each kind of certificate gwx issues may be used for (key usages, EKUs).
- ``ca``: the network CA as a directory — making roots and intermediates (and a 国密 CA's transport
  CA), issuing node, seal and service certificates; ``ca_records``: its directory's records — ``ca.json``,
  ``issued/``, revocations, CRL numbers; ``certificates``: loading and writing certificates and the
  names gwx puts in them (node ids, unit codes, hosts), for every module that holds one.
- ``directory_signer``: the key that signs the network directory (a purpose of its own), kept with
  the CA or in a signer directory.
- ``csr``: certificate requests (PKCS#10) made through a ``Signer`` and checked by the CA (signature,
  key type, nothing asked for); ``node_enrolment`` and ``seal_enrolment``: enrolment without handing
  out the CA — a node's or a unit's own keys, their requests, the CA signing them, the checked install.
- ``ocsp_signer``: the delegated OCSP responder key a root node answers with (the CA key stays offline).
- ``trust``: **the one place that judges certificate paths** (chain by issuer name and signature,
  validity, CA flag, path length, purpose); revocation is an injected callable.
- ``crl``, ``ocsp``: revocation lists (and whether one may replace another) and an OCSP responder as
  pure functions; ``revocation``: the
  checkers that fail closed (every "could not tell" is a ``RevocationUnknown``).
- ``cms``: the one CMS SignedData implementation; ``cms_view``: what verifying one needs, read
  straight from DER.
- ``tsa``: RFC 3161 time-stamp requests, a responder as a pure function, token verification.
- ``unit_code``: 统一社会信用代码 (GB 32100) parsing and check character.
- seals (GB/T 38540): ``seal`` (model, tolerant parser, builder), ``seal_asn1`` (the emitting
  definitions), ``seal_der`` (a bounded TLV reader), ``seal_picture`` (the picture, checked or
  drawn), ``seal_verify`` (verification with one code per failure), ``seal_store`` (a unit's seal
  on disk).
"""
