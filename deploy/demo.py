"""`make demo`: a root CA, a city node and two county nodes on loopback, one sealed 通知 end to end.

Real processes with mutual TLS between them, real SQLite files, a real seal: the city government
office sends a 通知 to five county units (主送 and 抄送), one signs for it (签收), one returns it
(退回) with a reason, the sender's per-recipient table is printed by the clerks' CLI, and the
package a county unit received is checked with tools we did not write (openssl, pdfsig, qpdf).
Everything runs under a new temporary directory (or --dir), which is kept afterwards for a look
(the last line says where), and stops cleanly.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from node.localnet import LocalNetwork, notice_pdf, send_document, wait_for
from pki.unit_code import make_unit_code

CITY_OFFICE = make_unit_code("11371300MB0000001")
COUNTY_A = [(make_unit_code("11371302MB0000001"), "兰山区人民政府办公室"),
            (make_unit_code("11371302MB0000002"), "兰山区应急管理局"),
            (make_unit_code("11371302MB0000003"), "兰山区财政局")]
COUNTY_B = [(make_unit_code("11371311MB0000001"), "罗庄区人民政府办公室"),
            (make_unit_code("11371311MB0000002"), "罗庄区应急管理局")]
TITLE = "关于做好2026年冬季安全生产工作的通知"


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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, help="where to put everything, emptied first (default: a new "
                        "temporary directory); kept afterwards either way")
    args = parser.parse_args()
    base = args.dir or Path(tempfile.mkdtemp(prefix="gwx-demo-"))
    if args.dir and base.exists():
        shutil.rmtree(base)
    started = time.monotonic()

    step("PKI: network root CA, node credentials and unit seals")
    net = LocalNetwork(base / "network")
    city = net.add_node("city", [{"code": CITY_OFFICE, "name": "临沂市人民政府办公室", "level": "city"}])
    county_a = net.add_node("lanshan", [{"code": c, "name": n, "level": "county"} for c, n in COUNTY_A])
    county_b = net.add_node("luozhuang", [{"code": c, "name": n, "level": "county"} for c, n in COUNTY_B])
    net.connect_all()
    print(f"  root CA '{net.ca.name}', 3 nodes, {1 + len(COUNTY_A) + len(COUNTY_B)} unit seals (GB/T 38540)")
    seal = city.directory / "units" / CITY_OFFICE / "seal.esl"
    ok = check("the city office's seal verifies (gwx pki verify-seal)",
               gwx("pki", "verify-seal", str(seal), "--trust", str(net.ca.directory / "root.crt")))

    step("starting three nodes (mutual TLS between them)")
    try:
        net.start_all()
        for n in net.nodes.values():
            print(f"  {n.node_id:10} peer API {n.ready['peer_url']}  local API {n.ready['local_url']}")

        step("the city office sends a sealed 通知 to five county units")
        body = base / "body.pdf"
        body.write_bytes(notice_pdf(TITLE, issuer="临沂市人民政府办公室", greeting="各区人民政府办公室，市直有关部门：",
                                    body=["为切实做好今冬明春安全生产工作，现将有关事项通知如下：",
                                          "一、压实安全生产责任。", "二、加强重点行业领域隐患排查。",
                                          "三、做好应急值守和信息报送。"]))
        attachment = base / "冬季安全生产检查表.csv"
        attachment.write_text("单位,检查项目,责任人\n", encoding="utf-8")
        meta = {"kind": "通知", "title": TITLE, "doc_number": "临政办发〔2026〕12号", "issuers": [CITY_OFFICE],
                "signers": [], "to": [COUNTY_A[0][0], COUNTY_B[0][0], COUNTY_A[1][0]],
                "cc": [COUNTY_A[2][0], COUNTY_B[1][0]], "written_on": "2026-11-20", "urgency": "加急",
                "classification": "非密", "deadline": "2026-11-30T17:00:00+08:00", "copy_number": None,
                "printed_by": "临沂市人民政府办公室", "printed_on": "2026-11-20", "note": None,
                "attachments_note": "附件：冬季安全生产检查表", "id": None}
        sent = send_document(city, CITY_OFFICE, meta, body, [attachment])
        doc_id = sent["doc_id"]
        print(f"  公文标识 {doc_id}")

        signer_unit, returner_unit = COUNTY_A[0][0], COUNTY_B[1][0]
        for node, unit in ((county_a, signer_unit), (county_b, returner_unit)):
            wait_for(lambda n=node, u=unit: n.clerk(u).get("/api/v1/inbox"), 30, what=f"{unit} inbox")
        step("兰山区人民政府办公室 signs for it (签收); 罗庄区应急管理局 returns it (退回)")
        county_a.clerk(signer_unit).post(f"/api/v1/inbox/{doc_id}/sign-for")
        county_b.clerk(returner_unit).post(f"/api/v1/inbox/{doc_id}/return",
                                           {"reason": "非本单位职责范围，请转市应急管理局"})

        def settled():
            rows = city.clerk(CITY_OFFICE).get(f"/api/v1/outbox/{doc_id}")["recipients"]
            by_unit = {r["unit"]: r["status"] for r in rows}
            return (by_unit[signer_unit] == "signed_for" and by_unit[returner_unit] == "returned"
                    and all(s != "queued" and s != "sent" for s in by_unit.values()))

        wait_for(settled, 30, what="the sender's rows")
        step("the sender's per-recipient table (gwx track)")
        token_file = city.directory / "tokens" / f"clerk-{CITY_OFFICE}.token"
        track = gwx("track", doc_id, "--node", city.ready["local_url"], "--token-file", str(token_file))
        print(track.stdout.rstrip() or track.stderr)
        ok &= track.returncode == 0

        step("the received package, checked by tools we did not write")
        pkg = base / "received.zip"
        client = county_a.clerk(signer_unit)
        status, content_type, data = client.request("GET", f"/api/v1/inbox/{doc_id}/package")
        if status != 200:  # an error body is not a package: say so rather than unzip it
            print(f"  [FAIL] downloading the package: HTTP {status} ({content_type})")
            print("    " + data[:2000].decode("utf-8", "replace").strip().replace("\n", "\n    "))
            ok = False
        else:
            ok &= check_package(pkg, data, base / "received", net.ca.directory / "root.crt")
    finally:
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
