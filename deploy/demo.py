"""`make demo`: a three-level network on loopback — a city, two counties, a township under one of
them — and one sealed 通知 end to end, through a relay.

Real processes with mutual TLS between them, real SQLite files, a real seal. The root operator
builds and signs the network directory (`gwx net build`) and installs it on the city only; the
counties fetch it from the city and the township from its county, by themselves. No node lists a
static peer: the township can reach only its county. The city government office sends a 通知 to
five county units and the township (主送 and 抄送); the county relays the township's copy without
being able to read it. One county unit signs for it (签收), one returns it (退回) with a reason, the
township signs for it — its 签收 comes back through the county —, the sender's per-recipient table
is printed by the clerks' CLI, the relay's disk is searched for the document in clear, and the
package a county unit received is checked with tools we did not write (openssl, pdfsig, qpdf).
An SMS gateway (``deploy/examples/webhook_receiver.py``, a webhook receiver that verifies each
delivery's signature) texts 兰山区人民政府办公室's clerk "您有文件要处理: <title>" when the 通知 arrives.
Everything runs under a new temporary directory (or --dir), which is kept afterwards for a look
(the last line says where), and stops cleanly.

``--profile sm`` (or ``GWX_PROFILE=sm make demo``, ``make demo PROFILE=sm``) runs it on a 国密 network:
an SM2 root whose node TLS is P-256 under its transport root (docs/architecture.md), each checked by
openssl on the way.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from deploy.sample_ofd import notice_ofd
from node.cli.api_client import RemoteError
from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.localnet import PASSPHRASE, LocalNetwork, free_port, notice_pdf, send_document, wait_for
from pki.algorithms import NETWORK_PROFILES
from pki.unit_code import make_unit_code

CITY_OFFICE = make_unit_code("11371300MB0000001")
COUNTY_A = [(make_unit_code("11371302MB0000001"), "兰山区人民政府办公室"),
            (make_unit_code("11371302MB0000002"), "兰山区应急管理局"),
            (make_unit_code("11371302MB0000003"), "兰山区财政局")]
COUNTY_B = [(make_unit_code("11371311MB0000001"), "罗庄区人民政府办公室"),
            (make_unit_code("11371311MB0000002"), "罗庄区应急管理局")]
TOWNSHIP = (make_unit_code("11371302MB0000101"), "兰山区枣园镇人民政府")
BEIJING = dt.timezone(dt.timedelta(hours=8))
TITLE = "关于做好2026年冬季安全生产工作的通知"


class DemoStopped(Exception):
    """A step failed so that the ones after it cannot run: the nodes are stopped and the demo says FAILED."""


def step(text: str) -> None:
    print(f"\n== {text}", flush=True)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, **kw)


def gwx(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    # Clerks read times in Beijing time whatever the machine's zone.
    return run([sys.executable, "-m", "node.cli.main", *args], env={**os.environ, "TZ": "Asia/Shanghai", **(env or {})},
               cwd=Path(__file__).resolve().parent.parent)


def check(label: str, proc: subprocess.CompletedProcess, expect: str | None = None) -> bool:
    ok = proc.returncode == 0 and (expect is None or expect in proc.stdout + proc.stderr)
    print(f"  [{'ok' if ok else 'FAIL'}] {label}")
    if not ok:
        print("    " + (proc.stdout + proc.stderr).strip().replace("\n", "\n    "))
    return ok


def check_package(pkg: Path, data: bytes, unpacked: Path, root: Path) -> bool:
    """The received package, checked by tools we did not write (and by gwx doc verify)."""
    ok = True
    pkg.write_bytes(data)
    with zipfile.ZipFile(pkg) as z:
        z.extractall(unpacked)
    ok &= check("openssl cms -verify: the manifest signature (the unit's seal key)",
                run(["openssl", "cms", "-verify", "-binary", "-inform", "DER", "-in",
                     str(unpacked / "META-INF" / "signature.p7s"), "-content",
                     str(unpacked / "META-INF" / "manifest.json"), "-CAfile", str(root), "-purpose", "any",
                     "-out", os.devnull]), "Verification successful")
    ok &= check("pdfsig: body.pdf carries a valid PAdES seal", run(["pdfsig", str(unpacked / "body.pdf")]),
                "Signature is Valid")
    ok &= check("qpdf --check: body.pdf is structurally sound", run(["qpdf", "--check", str(unpacked / "body.pdf")]))
    ok &= check("gwx doc verify: manifest, digests, PDF seal, GB/T 38540 seal",
                gwx("doc", "verify", str(pkg), "--trust", str(root)))
    return ok


def check_sm_package(pkg: Path, data: bytes, unpacked: Path, root: Path) -> bool:
    """A 国密 network's package: OpenSSL 3.0's cms cannot verify SM2 CMS, so the manifest signature's
    SM2/SM3 value is checked by openssl dgst over the signed attributes with the signer's key (the
    default distinguishing id); the OFD body's GB/T 38540 seal and the rest by gwx doc verify."""
    from asn1crypto import cms, core

    pkg.write_bytes(data)
    with zipfile.ZipFile(pkg) as z:
        z.extractall(unpacked)
    signed = cms.ContentInfo.load((unpacked / "META-INF" / "signature.p7s").read_bytes())["content"]
    info = signed["signer_infos"][0]
    attrs = info["signed_attrs"].untag().dump()  # what was signed: the attributes as a SET, not [0]
    signer = next(c for c in signed["certificates"]
                  if c.chosen.serial_number == info["sid"].chosen["serial_number"].native)
    (unpacked / "signer.crt").write_bytes(core.Any(signer.chosen).dump())
    key = run(["openssl", "x509", "-inform", "DER", "-in", str(unpacked / "signer.crt"), "-pubkey", "-noout"])
    (unpacked / "signer.pub").write_text(key.stdout)
    (unpacked / "attrs.der").write_bytes(attrs)
    (unpacked / "signature.bin").write_bytes(info["signature"].native)
    ok = check("openssl dgst -sm3 -verify: the manifest's SM2 signature (the unit's seal key, default id)",
               run(["openssl", "dgst", "-sm3", "-verify", str(unpacked / "signer.pub"), "-sigopt",
                    "distid:1234567812345678", "-signature", str(unpacked / "signature.bin"),
                    str(unpacked / "attrs.der")]), "Verified OK")
    ok &= check("gwx doc verify: manifest, digests, OFD seal (GB/T 38540 SES_Signature), seal",
                gwx("doc", "verify", str(pkg), "--trust", str(root)))
    return ok


def sample_body(path: Path, profile: str, title: str, **text: object) -> Path:
    """The 公文 body sent: a PDF, or on a 国密 network an OFD sealed per GB/T 38540 (a PDF sealed with
    SM2 is taken there too) — the same text either way."""
    if profile == "sm":
        path = path.with_suffix(".ofd")
        path.write_bytes(notice_ofd(title, **text))
    else:
        path.write_bytes(notice_pdf(title, **text))
    return path


def check_sm_credentials(creds: Path) -> bool:
    """A 国密 node's credentials, checked by openssl: the signing certificate's SM2 link to the root (the
    default distinguishing id), and the TLS certificate under the transport root, for TLS only."""
    ok = check("openssl verify: sign.crt is SM2-with-SM3 under the SM2 root",
               run(["openssl", "verify", "-vfyopt", "distid:1234567812345678", "-partial_chain", "-CAfile",
                    str(creds / "root.crt"), str(creds / "sign.crt")]), ": OK")
    for purpose in ("sslserver", "sslclient"):
        ok &= check(f"openssl verify -purpose {purpose}: tls.crt is P-256 under the transport root",
                    run(["openssl", "verify", "-CAfile", str(creds / "tls-root.crt"), "-purpose", purpose,
                         str(creds / "tls.crt")]), ": OK")
    refused = run(["openssl", "verify", "-CAfile", str(creds / "tls-root.crt"), "-purpose", "smimesign",
                   str(creds / "tls.crt")])
    return ok & report("openssl refuses the transport root for anything but TLS (-purpose smimesign)",
                       refused.returncode != 0)


def report(label: str, passed: bool) -> bool:
    print(f"  [{'ok' if passed else 'FAIL'}] {label}")
    return passed


def start_sms_gateway(base: Path, node_dir: Path, unit: str) -> tuple[subprocess.Popen | None, list[str], bool]:
    """A webhook for ``unit``'s received documents (gwx webhook add) to the example SMS gateway, started
    with the secret add printed; returns the gateway process, the lines it prints, and whether all went well."""
    port = free_port()
    added = gwx("webhook", "add", "--dir", str(node_dir), "--unit", unit, "--url", f"http://127.0.0.1:{port}/sms",
                "--event", "document.received", "--json")
    if not check("gwx webhook add: 兰山区人民政府办公室's received documents → the SMS gateway", added):
        return None, [], False
    secret_file = base / "sms-gateway.secret"
    secret_file.write_text(json.loads(added.stdout)["secret"] + "\n")
    secret_file.chmod(0o600)
    gateway = subprocess.Popen([sys.executable, str(Path(__file__).parent / "examples" / "webhook_receiver.py"),
                                "--port", str(port), "--secret-file", str(secret_file)],
                               stdout=subprocess.PIPE, text=True, encoding="utf-8")
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(line.rstrip("\n") for line in gateway.stdout), daemon=True).start()
    wait_for(lambda: lines, 30, what="the SMS gateway listening")
    return gateway, lines, True


def write_network_source(path: Path, net: LocalNetwork, tree: dict[str, tuple[str, str | None]]) -> Path:
    """The root operator's source of the network (see deploy/examples/network.toml)."""
    lines = ['network = "临沂市电子政务外网（演示）"', "version = 1", "next_update_days = 1", "valid_days = 30"]
    for node_id, (level, parent) in tree.items():
        config = load_config(net.nodes[node_id].directory)
        lines += ["", "[[nodes]]", f'id = "{node_id}"', f'urls = ["{config.peer_api.public_url}"]',
                  f'level = "{level}"', f'credentials = "{config.credentials_dir}"']
        lines += [f'parent = "{parent}"'] if parent else []
    for node_id, (level, _) in tree.items():
        for unit in net.nodes[node_id].units:
            lines += ["", "[[units]]", f'code = "{unit["code"]}"', f'name = "{unit["name"]}"', f'level = "{level}"',
                      f'node = "{node_id}"']
    path.write_text("\n".join(lines) + "\n", "utf-8")
    return path


def relayed_count(node, for_node: str) -> int:
    db = sqlite3.connect(f"file:{load_config(node.directory).data_dir / 'gwx.db'}?mode=ro", uri=True)
    try:
        return db.execute("SELECT COUNT(*) FROM received WHERE relayed_to IS NOT NULL AND (relayed_to = ? OR"
                          " origin_node = ?)", (for_node, for_node)).fetchone()[0]
    finally:
        db.close()


def files_holding(root: Path, needles: list[bytes]) -> list[str]:
    """The files under ``root`` that contain any of ``needles`` (the document in clear)."""
    return [str(p.relative_to(root)) for p in root.rglob("*")
            if p.is_file() and any(n in p.read_bytes() for n in needles)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put everything, emptied first (default: a new "
                        "temporary directory); kept afterwards either way")
    parser.add_argument("--profile", choices=sorted(NETWORK_PROFILES),
                        default=os.environ.get("GWX_PROFILE") or "international",
                        help="the network's cryptography: international (P-256, the default) or sm (国密: SM2, "
                             "SM3, SM4; node TLS P-256 under a transport root). Default: $GWX_PROFILE if set")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="gwx-demo-"))
    if args.dir and base.exists():
        shutil.rmtree(base)
    started = time.monotonic()

    step(f"PKI: network root CA ({args.profile} profile), node credentials and unit seals")
    net = LocalNetwork(base / "network", profile=args.profile)
    city = net.add_node("city", [{"code": CITY_OFFICE, "name": "临沂市人民政府办公室", "level": "city"}])
    county_a = net.add_node("lanshan", [{"code": c, "name": n, "level": "county"} for c, n in COUNTY_A])
    county_b = net.add_node("luozhuang", [{"code": c, "name": n, "level": "county"} for c, n in COUNTY_B])
    township = net.add_node("zaoyuan", [{"code": TOWNSHIP[0], "name": TOWNSHIP[1], "level": "township"}])
    # One CRL for every node, as the CA operator publishes it (each node init above minted its own,
    # numbered after the root's: the counties would refuse the city's as a rollback).
    net.publish_crls()
    print(f"  root CA '{net.ca.name}', 4 nodes, {2 + len(COUNTY_A) + len(COUNTY_B)} unit seals (GB/T 38540)")
    seal = city.directory / "units" / CITY_OFFICE / "seal.esl"
    ok = check("the city office's seal verifies (gwx pki verify-seal)",
               gwx("pki", "verify-seal", str(seal), "--trust", str(net.ca.directory / "root.crt")))
    if net.ca.separate_transport() is not None:
        ok &= check_sm_credentials(city.directory / "credentials")

    step("the network directory: built and signed by the root operator, installed on the city only")
    tree = {"city": ("city", None), "lanshan": ("county", "city"), "luozhuang": ("county", "city"),
            "zaoyuan": ("township", "lanshan")}
    source = write_network_source(base / "network.toml", net, tree)
    directory = base / "directory.json"
    env = {"GWX_PASSPHRASE": PASSPHRASE}
    ok &= check("gwx net build: every node and unit, signed by the directory signer",
                gwx("net", "build", "--source", str(source), "--ca", str(net.ca.directory), "--out", str(directory),
                    env=env))
    ok &= check("gwx net install --dir city", gwx("net", "install", str(directory), "--dir", str(city.directory)))
    for child, (_, parent) in tree.items():  # each node below fetches it from its parent, by itself
        if parent is not None:
            url = load_config(net.nodes[parent].directory).peer_api.public_url
            edit_config(net.nodes[child].directory, lambda doc, p=parent, u=url: set_section_values(
                doc, "parent", {"node_id": p, "url": u, "refresh_seconds": 1}))

    step("starting four nodes (mutual TLS; the township reaches only its county)")
    gateway: subprocess.Popen | None = None
    try:
        net.start_all()
        for n in net.nodes.values():
            print(f"  {n.node_id:10} peer API {n.ready['peer_url']}  local API {n.ready['local_url']}")
        for n in (county_a, county_b, township):
            wait_for(lambda n=n: (n.directory / "directory.json").is_file(), 30, what=f"the directory at {n.node_id}")
        ok &= check("the directory reached the township through its county (gwx net show --dir zaoyuan)",
                    gwx("net", "show", "--dir", str(township.directory)), "current")

        step("an SMS gateway for 兰山区人民政府办公室: a webhook receiver that verifies each signature")
        gateway, texts, fine = start_sms_gateway(base, county_a.directory, COUNTY_A[0][0])
        ok &= fine

        step("the city office sends a sealed 通知 to five county units and a township")
        body = sample_body(base / "body.pdf", args.profile, TITLE, issuer="临沂市人民政府办公室",
                           greeting="各区人民政府办公室，市直有关部门：",
                           body=["为切实做好今冬明春安全生产工作，现将有关事项通知如下：",
                                 "一、压实安全生产责任。", "二、加强重点行业领域隐患排查。", "三、做好应急值守和信息报送。"])
        attachment = base / "冬季安全生产检查表.csv"
        attachment.write_text("单位,检查项目,责任人\n", encoding="utf-8")
        # 办理时限: three days from now, 17:00 Beijing time.
        deadline = (dt.datetime.now(BEIJING) + dt.timedelta(days=3)).replace(hour=17, minute=0, second=0,
                                                                             microsecond=0).isoformat()
        meta = {"kind": "通知", "title": TITLE, "doc_number": "临政办发〔2026〕12号", "issuers": [CITY_OFFICE],
                "signers": [], "to": [COUNTY_A[0][0], COUNTY_B[0][0], COUNTY_A[1][0], TOWNSHIP[0]],
                "cc": [COUNTY_A[2][0], COUNTY_B[1][0]], "written_on": "2026-11-20", "urgency": "加急",
                "classification": "非密", "deadline": deadline, "copy_number": None,
                "printed_by": "临沂市人民政府办公室", "printed_on": "2026-11-20", "note": None,
                "attachments_note": "附件：冬季安全生产检查表", "id": None}
        try:
            sent = send_document(city, CITY_OFFICE, meta, body, [attachment])
        except RemoteError as exc:  # a refusal ends the demo FAILED with the nodes stopped, not a traceback
            report(f"the city office's 通知 was refused: {exc}", False)
            raise DemoStopped from None
        doc_id = sent["doc_id"]
        print(f"  公文标识 {doc_id}")

        signer_unit, returner_unit = COUNTY_A[0][0], COUNTY_B[1][0]
        for node, unit in ((county_a, signer_unit), (county_b, returner_unit), (township, TOWNSHIP[0])):
            wait_for(lambda n=node, u=unit: n.clerk(u).get("/api/v1/inbox"), 30, what=f"{unit} inbox")
        sms = f"您有文件要处理: {TITLE}"
        if gateway is not None:
            with contextlib.suppress(TimeoutError):
                wait_for(lambda: sms in texts, 30, what="the SMS")
        print("  SMS gateway: " + (texts[-1] if len(texts) > 1 else "(nothing)"))
        ok &= report("the SMS gateway texted the clerk (signed webhook, verified)", sms in texts)

        step("兰山区人民政府办公室 and 枣园镇 sign for it (签收); 罗庄区应急管理局 returns it (退回)")
        county_a.clerk(signer_unit).post(f"/api/v1/inbox/{doc_id}/sign-for")
        township.clerk(TOWNSHIP[0]).post(f"/api/v1/inbox/{doc_id}/sign-for")
        county_b.clerk(returner_unit).post(f"/api/v1/inbox/{doc_id}/return",
                                           {"reason": "非本单位职责范围，请转市应急管理局"})

        def settled():
            rows = city.clerk(CITY_OFFICE).get(f"/api/v1/outbox/{doc_id}")["recipients"]
            by_unit = {r["unit"]: r["status"] for r in rows}
            return (by_unit[signer_unit] == "signed_for" and by_unit[returner_unit] == "returned"
                    and by_unit[TOWNSHIP[0]] == "signed_for"
                    and all(s != "queued" and s != "sent" for s in by_unit.values()))

        wait_for(settled, 30, what="the sender's rows")
        step("the sender's per-recipient table (gwx track)")
        token_file = city.directory / "tokens" / f"clerk-{CITY_OFFICE}.token"
        track = gwx("track", doc_id, "--node", city.ready["local_url"], "--token-file", str(token_file))
        print(track.stdout.rstrip() or track.stderr)
        ok &= track.returncode == 0

        step("the relay: a 函 for the township alone passes the county, which cannot read it")
        letter_title = "关于枣园镇冬季森林防火检查情况的函"
        letter = base / "letter.pdf"
        letter = sample_body(letter, args.profile, letter_title, issuer="临沂市人民政府办公室",
                             greeting="兰山区枣园镇人民政府：", body=["请于本月底前报送冬季森林防火检查情况。"])
        letter_meta = {**meta, "kind": "函", "title": letter_title, "doc_number": "临政办函〔2026〕31号",
                       "to": [TOWNSHIP[0]], "cc": [], "urgency": None, "attachments_note": None}
        letter_id = send_document(city, CITY_OFFICE, letter_meta, letter)["doc_id"]
        wait_for(lambda: any(i["doc_id"] == letter_id for i in township.clerk(TOWNSHIP[0]).get("/api/v1/inbox")),
                 30, what="the 函 in the township's inbox")
        relayed = relayed_count(county_a, township.node_id)
        ok &= report(f"lanshan relayed {relayed} envelopes for zaoyuan (documents down; 送达 and 签收 notices up)",
                     relayed >= 4)
        needles = [letter_title.encode(), letter_id.encode()]
        ok &= report("the township holds the 函 (its title and 公文标识 are in its files)",
                     bool(files_holding(township.directory, needles)))
        found = files_holding(county_a.directory, needles)
        ok &= report("no file under lanshan's directory holds the 函's title or 公文标识"
                     + (f" (found in: {', '.join(found)})" if found else ""), not found)

        step("the received package, checked by tools we did not write")
        pkg = base / "received.zip"
        client = county_a.clerk(signer_unit)
        status, content_type, data = client.request("GET", f"/api/v1/inbox/{doc_id}/package")
        if status != 200:  # an error body is not a package: say so rather than unzip it
            print(f"  [FAIL] downloading the package: HTTP {status} ({content_type})")
            print("    " + data[:2000].decode("utf-8", "replace").strip().replace("\n", "\n    "))
            ok = False
        else:
            checker = check_sm_package if args.profile == "sm" else check_package
            ok &= checker(pkg, data, base / "received", net.ca.directory / "root.crt")
    except DemoStopped:
        ok = False
    finally:
        if gateway is not None:
            gateway.terminate()
            gateway.wait(timeout=10)
        step("stopping the nodes (SIGTERM: drain, then exit)")
        codes = {n.node_id: net.stop(n) for n in net.nodes.values()}
        print("  exit codes: " + json.dumps(codes))
        ok &= all(c == 0 for c in codes.values())
    # The directory is kept (the nodes, their logs, the received package) for a look afterwards.
    print(f"\ndemo {'succeeded' if ok else 'FAILED'} in {time.monotonic() - started:.1f} s")
    print(f"files kept in {base} (nodes, logs, the received package); remove with: rm -r {base}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
