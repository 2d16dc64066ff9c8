#!/usr/bin/env python3
"""A webhook receiver for gwx, as an SMS gateway would run it: verify, de-duplicate, text the clerk.

Standard library only, so it runs anywhere a receiver does (no gwx needed). For each delivery it:

1. checks ``X-Gwx-Signature`` = ``v1=`` HEX(HMAC-SHA256(secret, TIMESTAMP + "." + BODY)) over the
   exact bytes received, in constant time (401 if not);
2. refuses an ``X-Gwx-Timestamp`` more than 5 minutes from its own clock (401: old or replayed);
3. acts on each ``event_id`` once (gwx sends an event again after a crash or a retry, always with
   the same id): a repeat is answered 200 and not acted on again;
4. "sends the SMS": prints ``您有文件要处理: <title>`` for a received document (a real gateway
   would call its SMS provider here), and a line for every other event.

Answer 2xx only once the event is safely handled: anything else makes gwx try again later.

    python3 webhook_receiver.py --port 8099 --secret-file webhook.secret
    gwx webhook add --dir NODE_DIR --unit UNIT --url http://127.0.0.1:8099/ --event document.received

(the secret is what ``gwx webhook add`` printed; ``GWX_WEBHOOK_SECRET`` may carry it instead of a file).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TOLERANCE_SECONDS = 300
MAX_BODY = 1024 * 1024
MESSAGES = {"document.received": "您有文件要处理", "document.signed_for": "您发出的文件已签收",
            "document.returned": "您发出的文件被退回", "document.urged": "您有文件被催办",
            "document.recalled": "文件已撤回", "document.registered": "文件已登记",
            "delivery.failed": "文件未能送达", "webhook.test": "测试消息"}


def verify(secret: str, headers, body: bytes, now: float, seen: set[str]) -> dict | None:
    """The event, or None for a duplicate; raises ValueError for a delivery to refuse."""
    stamp, given = headers.get("X-Gwx-Timestamp", ""), headers.get("X-Gwx-Signature", "")
    if not (stamp.isascii() and stamp.isdigit()):
        raise ValueError("no timestamp")
    expected = "v1=" + hmac.new(secret.encode(), stamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), given.encode("utf-8", "replace")):
        raise ValueError("bad signature")
    if abs(now - int(stamp)) > TOLERANCE_SECONDS:
        raise ValueError("timestamp out of range (old or replayed)")
    event = json.loads(body)
    if headers.get("X-Gwx-Event-Id") != event["event_id"]:
        raise ValueError("event id header is not the body's")
    if event["event_id"] in seen:
        return None
    return event  # the caller remembers the id once it has acted (a failed send is tried again)


def text_for(event: dict) -> str:
    data = event.get("data", {})
    what = data.get("title") or data.get("message") or event.get("doc_id", "")
    line = f"{MESSAGES.get(event['type'], event['type'])}: {what}"
    if data.get("recipient"):
        line += f" ({data['recipient']})"
    return line


def make_handler(secret: str, seen: set[str]):
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                return self._answer(413 if length else 411, "body length")
            body = self.rfile.read(length)
            try:
                event = verify(secret, self.headers, body, time.time(), seen)
            except (ValueError, KeyError, TypeError) as exc:
                return self._answer(401, str(exc))
            if event is not None:
                print(text_for(event), flush=True)  # here a gateway sends the SMS
                # Only now: had the send failed, gwx's next try would be acted on. A real gateway
                # keeps these ids on disk, for good (an operator may replay an event any time).
                seen.add(event["event_id"])
            return self._answer(200, "ok")

        def _answer(self, status: int, text: str) -> None:
            data = text.encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args) -> None:  # keep stdout for the messages
            pass

    return Handler


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8099, help="0: any free port (printed at start)")
    parser.add_argument("--secret-file", type=Path, help="file holding the secret gwx webhook add printed")
    args = parser.parse_args()
    secret = (args.secret_file.read_text().strip() if args.secret_file
              else os.environ.get("GWX_WEBHOOK_SECRET", "").strip())
    if not secret:
        parser.error("give --secret-file or GWX_WEBHOOK_SECRET")
    server = ThreadingHTTPServer((args.host, args.port), make_handler(secret, set()))
    print(f"listening on http://{args.host}:{server.server_address[1]}/", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
