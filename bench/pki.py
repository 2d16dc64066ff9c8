"""PKI throughput on this machine: seals, seal verifications, OCSP responses, TSA tokens.

Each figure stands beside the bare ECDSA P-256 sign and verify measured in the same run, so the
overhead of the structures (DER building, parsing, path validation, file reads behind the CA
directory) is visible. The 国密 profile's bare SM2 sign and verify (pki.sm2: OpenSSL's libcrypto
through cffi) and its seal and CMS figures on an SM2 CA stand beside the P-256 ones. Everything runs in one process on one core; real certificates from a
throw-away CA. ``--quick`` shortens each measurement. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

# Run as a script, bench/ is sys.path[0] and this file would shadow the pki namespace package
# (a module beats a namespace package wherever it sits on the path): replace that entry.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402

from pki import cms, ocsp, tsa  # noqa: E402
from pki.ca import CertificateAuthority  # noqa: E402
from pki.revocation import check_ocsp  # noqa: E402
from pki.seal import SealBuilder  # noqa: E402
from pki.seal_store import issue_seal  # noqa: E402
from pki.seal_verify import verify_seal  # noqa: E402
from pki.sm2 import Sm2PrivateKey  # noqa: E402

PW = b"bench passphrase"
UNIT = "91350100M000100Y43"


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (imports, caches)
    n, start = 0, time.perf_counter()
    deadline = start + seconds
    while True:
        fn()
        n += 1
        now = time.perf_counter()
        if now >= deadline:
            return n / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.3 s per figure instead of 2 s")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 2.0
    now = dt.datetime.now(dt.UTC)

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ca = CertificateAuthority.init_root(base / "ca", "Bench Root", PW)
        credential = issue_seal(ca, UNIT, "基准测试单位", base / "seal", PW)
        maker = ca.seal_maker_signer()
        picture = credential.seal.picture
        builder = (SealBuilder().with_unit(UNIT, "基准测试单位").with_certificate(credential.certificate)
                   .with_picture(picture.data, picture.width_mm, picture.height_mm))
        seal_der = builder.build(maker, now=now).der
        responder = ca.ocsp_responder_signer()
        ocsp_request = ocsp.make_request(credential.certificate, ca.certificate, b"n" * 16)
        ocsp_response = ocsp.respond(ocsp_request, ca, responder, now)
        tsa_signer = ca.tsa_signer()
        tsa_request = tsa.make_request(b"manifest", nonce=7)
        key = ec.generate_private_key(ec.SECP256R1())
        message = b"x" * 256
        signature = key.sign(message, ec.ECDSA(hashes.SHA256()))
        public = key.public_key()
        serials = iter(range(1, 10**9))

        sm_ca = CertificateAuthority.init_root(base / "sm-ca", "Bench SM Root", PW, algorithm="sm2-sm3")
        sm_credential = issue_seal(sm_ca, UNIT, "基准测试单位", base / "sm-seal", PW)
        sm_maker = sm_ca.seal_maker_signer()
        sm_builder = (SealBuilder().with_unit(UNIT, "基准测试单位").with_certificate(sm_credential.certificate)
                      .with_picture(picture.data, picture.width_mm, picture.height_mm))
        sm_seal_der = sm_builder.build(sm_maker, now=now).der
        sm2_key = Sm2PrivateKey.generate()
        sm2_signature, sm2_public = sm2_key.sign(message), sm2_key.public_key()

        rows = [
            ("ecdsa_p256_sign", "bare ECDSA P-256 sign (256 B)", lambda: key.sign(message, ec.ECDSA(hashes.SHA256()))),
            ("ecdsa_p256_verify", "bare ECDSA P-256 verify", lambda: public.verify(signature, message,
                                                                                   ec.ECDSA(hashes.SHA256()))),
            ("sm2_sign_per_s", "bare SM2 sign with SM3 and the id (256 B)", lambda: sm2_key.sign(message)),
            ("sm2_verify_per_s", "bare SM2 verify", lambda: sm2_public.verify(sm2_signature, message)),
            ("seal_issue", "seal built and signed (SESeal v4)", lambda: builder.build(maker, now=now)),
            ("sm_seal_issue", "SM2 seal built and signed", lambda: sm_builder.build(sm_maker, now=now)),
            ("seal_verify", "seal verified (parse, 2 sigs, 2 paths)",
             lambda: verify_seal(seal_der, trust_roots=[ca.certificate], at=now)),
            ("sm_seal_verify", "SM2 seal verified (parse, 2 sigs, 2 paths)",
             lambda: verify_seal(sm_seal_der, trust_roots=[sm_ca.certificate], at=now)),
            ("ocsp_respond", "OCSP response (CA dir lookup + sign)", lambda: ocsp.respond(ocsp_request, ca, responder, now)),
            ("ocsp_check", "OCSP response checked (nonce, sig)",
             lambda: check_ocsp(credential.certificate, ca.certificate, ocsp_response, now, nonce=b"n" * 16)),
            ("tsa_token", "RFC 3161 token issued", lambda: tsa.respond(tsa_request, tsa_signer, now, next(serials))),
            ("cms_sign", "CMS detached signature (1 KiB)",
             lambda: cms.sign_detached(b"m" * 1024, credential.signer, signing_time=now)),
            ("sm_cms_sign", "SM2 CMS detached signature (GB/T 35275)",
             lambda: cms.sign_detached(b"m" * 1024, sm_credential.signer, signing_time=now)),
        ]
        figures = {}
        print(f"{'operation':<44} {'per second':>12}")
        print("-" * 57)
        for key_name, label, fn in rows:
            figures[key_name] = round(rate(fn, seconds), 1)
            print(f"{label:<44} {figures[key_name]:>12,.1f}")
    figures["seconds_per_figure"] = seconds
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
