"""Envelope throughput on this machine: 4 KiB envelopes sealed (encrypt + sign) and opened (verify +
trust path + decrypt) per second, beside the bare primitives the same work needs, measured in the
same run on one core, so the overhead of our structures is visible as a ratio to the floor.

Floors: sealing = ECDSA sign + ephemeral EC keygen + ECDH + AES-256-GCM(4 KiB) + SHA-256(4 KiB);
opening = 2 × ECDSA verify (header signature, node certificate under the root) + ECDH +
AES-256-GCM(4 KiB) + SHA-256(4 KiB). The same envelope on a 国密 network (an SM2 root: SM2/SM3 headers,
SM4-GCM payload, SM2 key transport) is measured beside it: ``sm_envelope_seal_per_s``,
``sm_envelope_open_per_s`` (``bench/pki.py`` has the bare SM2 sign and verify).

Extending: append ``(key, label, setup)`` to :data:`BENCHMARKS`; ``setup(ctx)`` returns the zero-argument
callable to time (``ctx`` holds the throw-away CA, nodes, and a cache for shared fixtures). ``--quick``
shortens each measurement; the last line printed is one JSON object with every figure.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import io
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

# Run as a script, bench/ is sys.path[0] and this file would shadow packages: replace that entry.
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from cryptography import x509  # noqa: E402
from cryptography.hazmat.primitives import hashes  # noqa: E402
from cryptography.hazmat.primitives.asymmetric import ec  # noqa: E402
from cryptography.hazmat.primitives.ciphers.aead import AESGCM  # noqa: E402
from cryptography.x509.oid import NameOID  # noqa: E402

from exchange_protocol.envelope import decode_header  # noqa: E402
from exchange_protocol.envelope_crypto import (  # noqa: E402
    DecryptionKey,
    Recipient,
    decrypt_bytes,
    decrypt_stream,
    encrypt_bytes,
    encrypt_stream,
)
from exchange_protocol.envelope_seal import (  # noqa: E402
    HeaderDraft,
    RelayCheck,
    Sender,
    TrustPolicy,
    open_envelope_bytes,
    seal_bundle,
    seal_envelope,
)
from pki import cms, profiles  # noqa: E402
from pki.ca import CertificateAuthority  # noqa: E402
from pki.certificates import NODE_URI_PREFIX  # noqa: E402
from pki.keystore import read_private_key  # noqa: E402
from pki.signer import SoftwareSigner  # noqa: E402
from pki.trust import Purpose, TrustStore  # noqa: E402

PW = b"bench passphrase"
PAYLOAD = os.urandom(4096)
UNIT_A, UNIT_B = "91350100M000100Y43", "11100000000013127D"


@dataclass
class Context:
    base: Path
    now: dt.datetime
    quick: bool
    ca: CertificateAuthority
    sender: Sender
    recipient: Recipient
    key: DecryptionKey
    policy: TrustPolicy
    cache: dict = field(default_factory=dict)

    def draft(self) -> HeaderDraft:
        return HeaderDraft.new("document", "a", "b", UNIT_A, [UNIT_B], self.now, dt.timedelta(days=1))


def make_context(base: Path, quick: bool) -> Context:
    now = dt.datetime.now(dt.UTC)
    ca = CertificateAuthority.init_root(base / "ca", "Bench Root", PW)
    a = ca.issue_node("a", "a.example", base / "a", PW)
    b = ca.issue_node("b", "b.example", base / "b", PW)
    sender = Sender("a", SoftwareSigner(read_private_key(base / "a" / "sign.key", PW), a.signing_certificate))
    key = DecryptionKey(read_private_key(base / "b" / "enc.key", PW), b.encryption_certificate)
    return Context(base, now, quick, ca, sender, Recipient(b.encryption_certificate), key,
                   TrustPolicy(TrustStore.of([ca.root_certificate])))


# ---- the benchmarks -----------------------------------------------------------------------------
def _keys(ctx: Context):
    if "keys" not in ctx.cache:
        key = ec.generate_private_key(ec.SECP256R1())
        sig = key.sign(b"h" * 400, ec.ECDSA(hashes.SHA256()))
        ctx.cache["keys"] = key, sig, ec.generate_private_key(ec.SECP256R1()).public_key()
    return ctx.cache["keys"]


def b_ecdsa_sign(ctx):
    key, _, _ = _keys(ctx)
    return lambda: key.sign(b"h" * 400, ec.ECDSA(hashes.SHA256()))


def b_ecdsa_verify(ctx):
    key, sig, _ = _keys(ctx)
    pub = key.public_key()
    return lambda: pub.verify(sig, b"h" * 400, ec.ECDSA(hashes.SHA256()))


def b_ecdh_keygen_derive(ctx):
    _, _, peer = _keys(ctx)
    return lambda: ec.generate_private_key(ec.SECP256R1()).exchange(ec.ECDH(), peer)


def b_ecdh_derive(ctx):
    key, _, peer = _keys(ctx)
    return lambda: key.exchange(ec.ECDH(), peer)


def b_aes_gcm_4k(ctx):
    gcm, nonce = AESGCM(AESGCM.generate_key(256)), os.urandom(12)
    return lambda: gcm.encrypt(nonce, PAYLOAD, None)


def b_sha256_4k(ctx):
    return lambda: hashlib.sha256(PAYLOAD).digest()


def b_envelope_seal(ctx):
    draft = ctx.draft()
    return lambda: seal_envelope(draft, PAYLOAD, ctx.sender, ctx.recipient)


def b_envelope_open(ctx):
    data = seal_envelope(ctx.draft(), PAYLOAD, ctx.sender, ctx.recipient).data
    return lambda: open_envelope_bytes(data, ctx.policy, ctx.key, "b", ctx.now)


def _sm(ctx: Context) -> Context:
    """The same two nodes on a 国密 network (an SM2 root): SM2 keys, SM4-GCM payloads, SM2 key transport."""
    if "sm" not in ctx.cache:
        base = ctx.base / "sm"
        ca = CertificateAuthority.init_root(base / "ca", "Bench SM Root", PW, algorithm="sm2-sm3")
        a = ca.issue_node("a", "a.example", base / "a", PW)
        b = ca.issue_node("b", "b.example", base / "b", PW)
        sender = Sender("a", SoftwareSigner(read_private_key(base / "a" / "sign.key", PW), a.signing_certificate))
        key = DecryptionKey(read_private_key(base / "b" / "enc.key", PW), b.encryption_certificate)
        ctx.cache["sm"] = Context(base, ctx.now, ctx.quick, ca, sender, Recipient(b.encryption_certificate), key,
                                  TrustPolicy(TrustStore.of([ca.root_certificate])))
    return ctx.cache["sm"]


def b_sm_envelope_seal(ctx):
    return b_envelope_seal(_sm(ctx))


def b_sm_envelope_open(ctx):
    return b_envelope_open(_sm(ctx))


def b_sm_payload_encrypt(ctx):
    return b_payload_encrypt(_sm(ctx))


def b_sm_payload_decrypt(ctx):
    return b_payload_decrypt(_sm(ctx))


def b_payload_encrypt(ctx):
    return lambda: encrypt_bytes(PAYLOAD, ctx.recipient)


def b_payload_decrypt(ctx):
    payload = encrypt_bytes(PAYLOAD, ctx.recipient)
    return lambda: decrypt_bytes(payload, ctx.key)


def b_header_codec(ctx):
    header = ctx.draft().complete(4400, b"\x01" * 32)
    return lambda: decode_header(header.encode())


def _meta_3600() -> bytes:
    """A META.json naming 3,600 recipients: parsed three or four times by every node a 通知 reaches."""
    return json.dumps({"to": [f"11430700MB{i:07d}X" for i in range(3600)], "cc": [], "title": "通知"}).encode()


def b_json_loads_meta(ctx):
    data = _meta_3600()
    return lambda: json.loads(data)


def b_load_json_meta(ctx):
    from exchange_protocol.canonical import load_json
    data = _meta_3600()
    return lambda: load_json(data, max_bytes=10**6)


def b_cms_sign(ctx):
    data = ctx.draft().complete(4400, b"\x01" * 32).encode()
    return lambda: cms.sign_detached(data, ctx.sender.signer)


def b_cms_verify(ctx):
    data = ctx.draft().complete(4400, b"\x01" * 32).encode()
    sig = cms.sign_detached(data, ctx.sender.signer)
    return lambda: cms.verify_detached(sig, data, trust_roots=ctx.policy.trust, now=ctx.now,
                                       purpose=Purpose.SIGNING)


class _Zeros(io.RawIOBase):
    def readable(self):
        return True

    def readinto(self, b):
        b[:] = bytes(len(b))
        return len(b)


class _Null(io.RawIOBase):
    def writable(self):
        return True

    def write(self, b):
        return len(b)


def b_stream_mib(ctx):
    """Encrypt and decrypt a payload file to file; one call = one round of the whole size."""
    size = (64 if ctx.quick else 1024) * 1024 * 1024
    path = ctx.base / "stream.der"

    def run():
        with open(path, "wb") as spool:
            sealed = encrypt_stream(_Zeros(), spool, size, ctx.recipient)
        with open(path, "rb") as src:
            decrypt_stream(src, _Null(), ctx.key, length=sealed.length)
        path.unlink()
    ctx.cache["stream_mib"] = size / (1024 * 1024)
    return run


# ---- document packages (exchange_protocol.package): a 1 MiB PDF sealed and packed, and verified
def _package_fixture(ctx):
    if "package" not in ctx.cache:
        from PIL import Image
        from reportlab.lib.utils import ImageReader
        from reportlab.pdfgen import canvas

        from exchange_protocol.meta_json import parse_meta
        from pki.seal_store import issue_seal
        cred = issue_seal(ctx.ca, UNIT_A, "某某市人民政府", ctx.base / "seal", PW)
        buf = io.BytesIO()
        c = canvas.Canvas(buf)
        scan = Image.frombytes("RGB", (600, 590), os.urandom(600 * 590 * 3))  # a 1 MiB "scanned page"
        c.drawImage(ImageReader(scan), 0, 0, 595, 842)
        c.drawString(380, 270, "2026-03-02")
        c.showPage()
        c.save()
        meta = parse_meta({"kind": "通知", "title": "基准测试", "issuers": [UNIT_A], "to": [UNIT_B],
                           "written_on": "2026-03-02"}, now=ctx.now).metadata
        ctx.cache["package"] = cred, buf.getvalue(), meta
    return ctx.cache["package"]


def b_sha256_1m(ctx):
    data = os.urandom(1024 * 1024)
    return lambda: hashlib.sha256(data).digest()


def b_package_build(ctx):
    from exchange_protocol.package import build_package
    cred, pdf, meta = _package_fixture(ctx)
    return lambda: build_package(_Null(), metadata=meta, body=pdf, seal_key=cred, at=ctx.now)


def b_package_verify(ctx):
    from exchange_protocol.package import build_package
    from exchange_protocol.package_verify import verify_package
    cred, pdf, meta = _package_fixture(ctx)
    out = io.BytesIO()
    build_package(out, metadata=meta, body=pdf, seal_key=cred, at=ctx.now)
    data = out.getvalue()
    return lambda: verify_package(io.BytesIO(data), [ctx.ca.root_certificate], ctx.now)


# (key, label, setup); setup(ctx) returns the callable to time. Primitives first: they are the floor.
BENCHMARKS: list[tuple[str, str, Callable[[Context], Callable[[], object]]]] = [
    ("ecdsa_sign", "bare ECDSA P-256 sign", b_ecdsa_sign),
    ("ecdsa_verify", "bare ECDSA P-256 verify", b_ecdsa_verify),
    ("ecdh_keygen_derive", "bare EC keygen + ECDH", b_ecdh_keygen_derive),
    ("ecdh_derive", "bare ECDH derive", b_ecdh_derive),
    ("aes_gcm_4k", "bare AES-256-GCM 4 KiB", b_aes_gcm_4k),
    ("sha256_4k", "bare SHA-256 4 KiB", b_sha256_4k),
    ("header_codec", "part: header encode + strict decode", b_header_codec),
    ("payload_encrypt", "part: payload encrypt 4 KiB (CMS, ECDH)", b_payload_encrypt),
    ("payload_decrypt", "part: payload decrypt 4 KiB (CMS, ECDH)", b_payload_decrypt),
    ("json_loads_meta", "bare json.loads, META.json of 3,600 recipients", b_json_loads_meta),
    ("load_json_meta", "part: canonical.load_json (+ nesting, duplicate keys), same", b_load_json_meta),
    ("cms_sign", "part: pki.cms.sign_detached (header)", b_cms_sign),
    ("cms_verify", "part: pki.cms.verify_detached + trust path", b_cms_verify),
    ("envelope_seal", "envelope 4 KiB sealed (encrypt+sign)", b_envelope_seal),
    ("envelope_open", "envelope 4 KiB opened (verify+trust+decrypt)", b_envelope_open),
    ("sm_payload_encrypt", "国密: payload encrypt 4 KiB (SM4-GCM, SM2 transport)", b_sm_payload_encrypt),
    ("sm_payload_decrypt", "国密: payload decrypt 4 KiB (SM2, SM4-GCM)", b_sm_payload_decrypt),
    ("sm_envelope_seal_per_s", "国密: envelope 4 KiB sealed (SM4+SM2, SM2 sign)", b_sm_envelope_seal),
    ("sm_envelope_open_per_s", "国密: envelope 4 KiB opened (SM2 verify+trust+SM2)", b_sm_envelope_open),
    ("sha256_1m", "bare SHA-256 1 MiB", b_sha256_1m),
    ("package_build", "package, 1 MiB PDF, built + sealed (PAdES+CMS)", b_package_build),
    ("package_verify", "package, 1 MiB PDF, verified (all checks)", b_package_verify),
]
STREAM = ("stream_roundtrip", "payload stream encrypt+decrypt", b_stream_mib)
FANOUT_NODES = 163  # 常德: 1 city, 9 county and 153 township nodes


def fan_out(ctx: Context) -> dict[str, float]:
    """One 1 MiB payload sealed as one bundle for 163 destination nodes (encrypted once, 163 signed
    headers); checked as a relay checks it (163 signatures, no key) and opened at one destination."""
    payload = os.urandom(1024 * 1024)
    recipients, key = [], None
    for i in range(FANOUT_NODES):
        private = ec.generate_private_key(ec.SECP256R1())
        cert = ctx.ca.issue(private.public_key(), x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"d{i}")]),
                            profiles.NODE_ENCRYPTION, sans=[x509.UniformResourceIdentifier(f"{NODE_URI_PREFIX}d{i}")])
        recipients.append(Recipient(cert))
        key = key or DecryptionKey(private, cert)
    drafts = [HeaderDraft.new("document", "a", f"d{i}", UNIT_A, [UNIT_B], ctx.now, dt.timedelta(days=1))
              for i in range(FANOUT_NODES)]
    rounds = 1 if ctx.quick else 3
    start = time.perf_counter()
    for _ in range(rounds):
        bundle = seal_bundle(drafts, payload, ctx.sender, recipients)
    seal_ms = (time.perf_counter() - start) * 1000 / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        relay = RelayCheck(ctx.policy, ctx.now)
        relay.feed(bundle.data)
        relay.close()
    relay_ms = (time.perf_counter() - start) * 1000 / rounds
    start = time.perf_counter()
    for _ in range(rounds):
        open_envelope_bytes(bundle.data, ctx.policy, key, "d0", ctx.now)
    open_ms = (time.perf_counter() - start) * 1000 / rounds
    return {"fanout_nodes": FANOUT_NODES, "fanout_seal_ms": seal_ms, "fanout_relay_check_ms": relay_ms,
            "fanout_open_ms": open_ms, "fanout_bytes_over_payload": len(bundle.data) - len(payload)}


def rate(fn: Callable[[], object], seconds: float) -> float:
    fn()  # warm up
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        now = time.perf_counter()
        if now - start >= seconds:
            return n / (now - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="0.3 s per figure, 64 MiB stream instead of 1 GiB")
    parser.add_argument("--profile", metavar="KEY", help="cProfile one benchmark instead of the table")
    args = parser.parse_args()
    seconds = 0.3 if args.quick else 2.0
    with tempfile.TemporaryDirectory() as tmp:
        ctx = make_context(Path(tmp), args.quick)
        if args.profile:
            import cProfile
            import pstats
            fn = dict((k, s) for k, _, s in [*BENCHMARKS, STREAM])[args.profile](ctx)
            cProfile.runctx("for _ in range(200): fn()", globals(), {"fn": fn}, str(ctx.base / "prof"))
            pstats.Stats(str(ctx.base / "prof")).sort_stats("tottime").print_stats(25)
            return 0
        figures: dict[str, float] = {}
        print(f"{'figure':48} {'per second':>12} {'µs each':>10}")
        for key, label, setup in BENCHMARKS:
            figures[key] = rate(setup(ctx), seconds)
            print(f"{label:48} {figures[key]:12.0f} {1e6 / figures[key]:10.1f}")
        start = time.perf_counter()
        b_stream_mib(ctx)()
        elapsed = time.perf_counter() - start
        figures["stream_mib_per_s"] = ctx.cache["stream_mib"] / elapsed
        print(f"{STREAM[1] + ' (' + str(int(ctx.cache['stream_mib'])) + ' MiB)':48} "
              f"{figures['stream_mib_per_s']:9.0f} MiB/s")
        fan = fan_out(ctx)
        figures.update(fan)
        print(f"{'fan-out: 1 MiB for ' + str(FANOUT_NODES) + ' nodes, one bundle sealed':48} "
              f"{fan['fanout_seal_ms']:9.0f} ms   {fan['fanout_bytes_over_payload']:.0f} bytes over the payload "
              f"({fan['fanout_bytes_over_payload'] / FANOUT_NODES:.0f} per destination)")
        print(f"{'fan-out: that bundle checked by a relay':48} {fan['fanout_relay_check_ms']:9.0f} ms")
        print(f"{'fan-out: that bundle opened at one destination':48} {fan['fanout_open_ms']:9.0f} ms")

    us = {k: 1e6 / v for k, v in figures.items() if k != "stream_mib_per_s" and not k.startswith("fanout_")}
    seal_floor = us["ecdsa_sign"] + us["ecdh_keygen_derive"] + us["aes_gcm_4k"] + us["sha256_4k"]
    open_floor = 2 * us["ecdsa_verify"] + us["ecdh_derive"] + us["aes_gcm_4k"] + us["sha256_4k"]
    figures["seal_floor_per_s"] = 1e6 / seal_floor
    figures["open_floor_per_s"] = 1e6 / open_floor
    figures["seal_x_floor"] = us["envelope_seal"] / seal_floor
    figures["open_x_floor"] = us["envelope_open"] / open_floor
    print(f"{'primitive floor, sealing':48} {figures['seal_floor_per_s']:12.0f} {seal_floor:10.1f}"
          f"   envelope is {figures['seal_x_floor']:.1f}× the floor")
    print(f"{'primitive floor, opening':48} {figures['open_floor_per_s']:12.0f} {open_floor:10.1f}"
          f"   envelope is {figures['open_x_floor']:.1f}× the floor")
    # A package: two signatures (PAdES, manifest CMS) and the body hashed twice (PAdES, manifest).
    package_floor = 2 * us["ecdsa_sign"] + 2 * us["sha256_1m"]
    figures["package_floor_per_s"] = 1e6 / package_floor
    figures["package_x_floor"] = us["package_build"] / package_floor
    print(f"{'primitive floor, package build':48} {figures['package_floor_per_s']:12.0f} {package_floor:10.1f}"
          f"   package is {figures['package_x_floor']:.1f}× the floor")
    print(json.dumps({k: round(v, 2) for k, v in figures.items()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
