"""What a unit-signed 签收/退回 statement (``exchange_protocol.statements``) adds to each 签收.

Measured on this machine, one process, one core, real certificates from a throw-away CA (a root
and the seal certificate under it, the CRL checked as a node checks it):

* ``sign_us`` — the receiving node: build and sign one statement with the unit's seal key (software
  P-256), beside ``ecdsa_sign_us``, the bare signature it contains;
* ``verify_us`` — the sending node: verify one statement (CMS, path to the root, CRL, content,
  unit), beside ``ecdsa_verify_us``; the same statement again and again, so parsed certificates
  and the trust store's link cache answer from memory (a lower bound);
* ``verify_distinct_us`` — the same, one pass over statements of ``--seals`` distinct seal
  certificates (default 100), each verified once: no cache hit, as for the 3,600 units of one 通知
  coming back to the one issuing node; ``issuing_node_3600_s`` — what verifying 3,600 of them costs
  that node, on one core (serial in its processor's worker thread); ``verify_distinct_cpu_us`` the
  same pass in CPU time (``time.process_time``: less sensitive to a shared machine's load).
  ``--counties N`` issues the seals from N intermediate CAs under the root, dealt round, each with
  its CRL in the checker beside the root's — a city's shape (bench/network.py: 9 counties, 10 CRLs);
  the default 0 keeps the seals under the root with its one CRL; ``--revoked N`` has every CA's CRL
  list N other seals' serials (a county that has revoked seals over the years; the default 0 is an
  empty CRL);
* ``statement_bytes`` and ``entry_bytes_added`` — the DER, and what it adds to a notice's JSON entry
  (base64); ``notices_per_batch`` with and without statements — how many 签收 fit one batch payload
  (``MAX_NOTICE_BYTES``), hence ``envelopes_for_3600`` each way for 3,600 签收 of one 通知 arriving at
  one node (the worst case: in the network bench a node hosts ~22 of them).

``--quick`` shortens each measurement. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parent.parent)  # bench/ would shadow the pki package

from cryptography import x509  # noqa: E402

from exchange_protocol.envelope import MessageType  # noqa: E402
from exchange_protocol.notices import Notice, pack_notices  # noqa: E402
from exchange_protocol.statements import Statement, sign_statement, verify_statement  # noqa: E402
from pki.algorithms import DEFAULT  # noqa: E402
from pki.ca import CertificateAuthority  # noqa: E402
from pki.ca_records import Revocation  # noqa: E402
from pki.crl import build_crl, current_crl  # noqa: E402
from pki.revocation import CrlChecker  # noqa: E402
from pki.seal_store import issue_seal  # noqa: E402
from pki.signer import SoftwareSigner  # noqa: E402
from pki.trust import TrustStore  # noqa: E402
from pki.unit_code import make_unit_code  # noqa: E402

PW = b"bench passphrase"
SENDER = make_unit_code("11371300MB0000001")
DOC = "0193a5b2-0000-7000-8000-000000000001"


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up (imports, caches)
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return elapsed / n * 1e6


def verify_distinct_us(cas: list[CertificateAuthority], units: list[str], digest: str, now: dt.datetime,
                       trust: TrustStore, crls: CrlChecker,
                       intermediates: tuple[x509.Certificate, ...] = ()) -> tuple[float, float]:
    """Per statement, one pass over statements each signed by a seal certificate of its own (a cold
    cache for each, as at the issuing node), issued by ``cas`` dealt round; the seals are made first,
    outside the timing. (wall µs, CPU µs)"""
    ders = []
    for i, unit in enumerate(units, start=1):
        key = DEFAULT.generate()
        ca = cas[i % len(cas)]
        cert = ca.issue_seal_certificate(unit, f"第{i}村村民委员会", key.public_key(), now=now - dt.timedelta(minutes=5))
        statement = Statement(MessageType.RECEIPT, DOC, digest, unit, f"第{i}村村民委员会", "收发员甲", now, None,
                              SENDER)
        ders.append(sign_statement(statement, SoftwareSigner(key, cert)))
    start, cpu = time.perf_counter(), time.process_time()
    for der in ders:
        verify_statement(der, trust, now=now, intermediates=intermediates, revocation=crls)
    return ((time.perf_counter() - start) / len(ders) * 1e6, (time.process_time() - cpu) / len(ders) * 1e6)


class _RevokedMany:
    """``ca`` as :func:`pki.crl.build_crl` sees it, with ``count`` other serials revoked (never issued
    here: the CRL's size is what is measured, not whom it names)."""

    def __init__(self, ca: CertificateAuthority, count: int, now: dt.datetime) -> None:
        self.ca, self.certificate, self.directory = ca, ca.certificate, ca.directory
        self._revoked = {serial: Revocation(serial, "key_compromise", now - dt.timedelta(days=1))
                         for serial in range(10**30, 10**30 + count)}

    def signer(self):
        return self.ca.signer()

    def revocations(self) -> dict[int, Revocation]:
        return self._revoked

    def take_crl_number(self) -> int:
        return self.ca.take_crl_number()


def crl_of(ca: CertificateAuthority, revoked: int, now: dt.datetime):
    return current_crl(ca, now) if not revoked else build_crl(_RevokedMany(ca, revoked, now), now)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="shorter measurements")
    parser.add_argument("--seals", type=int, default=100, help="distinct seal certificates for verify_distinct_us")
    parser.add_argument("--counties", type=int, default=0,
                        help="intermediate CAs issuing the distinct seals, each with its CRL (a city: 9)")
    parser.add_argument("--revoked", type=int, default=0, help="other serials every CA's CRL lists")
    args = parser.parse_args()
    seconds = 0.5 if args.quick else 3.0
    now = dt.datetime.now(dt.UTC).replace(microsecond=0)
    units = [make_unit_code(f"54371302MA{i:07d}") for i in range(3600)]
    with tempfile.TemporaryDirectory() as tmp:
        ca = CertificateAuthority.init_root(Path(tmp) / "ca", "测量CA", PW)
        seal = issue_seal(ca, units[0], "第0村村民委员会", Path(tmp) / "seal", PW)
        trust = TrustStore.of([ca.certificate])
        crls = CrlChecker([current_crl(ca, now)])
        digest = hashlib.sha256(b"the sealed package").hexdigest()
        statement = Statement(MessageType.RECEIPT, DOC, digest, units[0], "第0村村民委员会", "收发员甲", now, None,
                              SENDER)
        der = sign_statement(statement, seal.signer, seal.chain)
        sign_us = per_call_us(lambda: sign_statement(statement, seal.signer, seal.chain), seconds)
        verify_us = per_call_us(lambda: verify_statement(der, trust, now=now, revocation=crls), seconds)
        counties = [ca.create_intermediate(Path(tmp) / f"county-{k}", f"测量县CA{k}", PW) for k in range(args.counties)]
        if counties or args.revoked:
            crls = CrlChecker([crl_of(c, args.revoked, now) for c in [ca, *counties]])
        distinct_us, distinct_cpu_us = verify_distinct_us(counties or [ca], units[1:args.seals + 1], digest, now,
                                                          trust, crls, tuple(c.certificate for c in counties))
        data = b"x" * 32
        ecdsa_sign_us = per_call_us(lambda: seal.signer.sign(data), seconds)
        sig = seal.signer.sign(data)
        ecdsa_verify_us = per_call_us(lambda: seal.signer.algorithm.verify(seal.certificate.public_key(), sig, data),
                                      seconds)

    plain = [Notice(MessageType.RECEIPT, DOC, (u,), now, by="收发员甲") for u in units]
    signed = [Notice(MessageType.RECEIPT, DOC, (u,), now, by="收发员甲", evidence=der) for u in units]
    runs_plain, runs_signed = pack_notices(plain), pack_notices(signed)
    added = len(signed[0].encode()) - len(plain[0].encode())
    result = {
        "bench": "evidence", "date": now.isoformat(), "quick": args.quick,
        "sign_us": round(sign_us, 1), "ecdsa_sign_us": round(ecdsa_sign_us, 1),
        "verify_us": round(verify_us, 1), "ecdsa_verify_us": round(ecdsa_verify_us, 1),
        "statement_bytes": len(der), "entry_bytes_added": added,
        "notices_per_batch_plain": max(len(r) for r in runs_plain),
        "notices_per_batch_signed": max(len(r) for r in runs_signed),
        "envelopes_for_3600_plain": len(runs_plain), "envelopes_for_3600_signed": len(runs_signed),
        "per_signed_for_cpu_ms": round((sign_us + verify_us) / 1000, 3),
        "seals": args.seals, "counties": args.counties, "revoked": args.revoked, "verify_distinct_us": round(distinct_us, 1),
        "verify_distinct_cpu_us": round(distinct_cpu_us, 1),
        "issuing_node_3600_s": round(distinct_us * 3600 / 1e6, 2),
    }
    print(f"sign a statement {sign_us:.0f} µs (bare ECDSA {ecdsa_sign_us:.0f} µs); verify {verify_us:.0f} µs "
          f"(bare {ecdsa_verify_us:.0f} µs), {distinct_us:.0f} µs each over {args.seals} distinct seals "
          f"({distinct_cpu_us:.0f} µs CPU; {args.counties} county CAs, {args.revoked} revoked in each CRL) "
          f"({distinct_us * 3.6e-3:.1f} s for 3,600 at the issuing node); {len(der)} bytes DER, +{added} bytes per notice; "
          f"3,600 签收 in {len(runs_signed)} envelopes instead of {len(runs_plain)}")
    print(json.dumps(result, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main())
