"""Subprocess of the disk-full test, run inside ``unshare -Urm`` (a mount namespace of its own, so
it may mount a small tmpfs without touching the machine's mounts).

Usage: python -m tests.adapters.soapserver.disk_full_child WORK_DIR
Mounts a 2 MiB tmpfs on the SOAP endpoint's upload directory, sends an MTOM submission with a 3 MiB
attachment chunked (no Content-Length, so the endpoint cannot check free space first), then prints
one JSON line: the answer's status and fault code and message, what was left in the upload
directory, how many documents clerk A's outbox holds, and whether the node still serves.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer
from lxml import etree

from tests.adapters.soapserver.soap_support import (
    ENDPOINT,
    GWX,
    SoapEnv,
    envelope,
    fault_of,
    headers,
    submit_children,
)
from tests.adapters.soapserver.zeep_support import to_mtom
from tests.node.api.local_api_support import SMALL_LIMITS, make_env, outbox_of_a


async def main(work: Path) -> dict:
    env = make_env(work, dataclasses.replace(SMALL_LIMITS, max_envelope_bytes=64 * 1024 * 1024))
    env.upload_dir.mkdir(parents=True, exist_ok=True)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(env.upload_dir)], check=True)
    stand_in = os.urandom(1000)
    xml = envelope("SubmitDocument", submit_children(attachments=(("录像.bin", stand_in),)), token=env.clerk_a)
    data, content_type = to_mtom(etree.fromstring(xml), headers("SubmitDocument")["Content-Type"])
    data = data.replace(stand_in, os.urandom(3 * 1024 * 1024))

    async def chunked():
        for at in range(0, len(data), 64 * 1024):
            yield data[at:at + 64 * 1024]
    async with SoapEnv(env).serve() as app, TestClient(TestServer(app)) as client:
        response = await client.post(ENDPOINT, data=chunked(), headers={
            "Content-Type": content_type, "SOAPAction": f'"{GWX}#SubmitDocument"'})
        body = await response.read()
        fault = fault_of(body) if response.status != 200 else {}
        health = await client.get("/healthz")
        return {"status": response.status, "code": fault.get("gwx_code"), "soap": fault.get("code"),
                "message": fault.get("message"), "left": sorted(p.name for p in env.upload_dir.iterdir()),
                "sent": len(await outbox_of_a(client, env)), "serving": health.status == 200}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(Path(sys.argv[1])))), flush=True)
