"""Subprocess for the inline blobs' crash test: accepts small envelopes as the acceptor does.

Usage: python -m tests.node.store.inline_child DATA_DIR N [POSTGRESQL_DSN]
Accepts N envelopes as the acceptor does small ones (no file: the bytes committed with the
``received`` row, in the database for good), printing ``ACK <message_id> <digest> <digest>``
after each commit — the moment a node sends its receipt — then ``DONE`` and waits to be killed.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys

from node.store import BlobRef, InboundEnvelope
from node.store.postgresql import Store as PgStore
from node.store.sqlite import Store


async def main(data_dir: str, n: int, dsn: str | None) -> None:
    if dsn:
        store = await PgStore.open(data_dir, dsn=dsn)
    else:
        store = await Store.open(data_dir)

    async def accept(i: int) -> None:
        envelope = f"envelope {i} ".encode() * (50 + i)
        payload = f"payload {i} ".encode() * (70 + i)
        env_ref = BlobRef(hashlib.sha256(envelope).hexdigest(), len(envelope))
        payload_ref = BlobRef(hashlib.sha256(payload).hexdigest(), len(payload))
        message_id = f"inline-{i:03d}"
        await store.accept_inbound(InboundEnvelope(
            message_id, hashlib.sha256(envelope).hexdigest(), env_ref.digest, "node-a", b"receipt", "document",
            env_ref.size, payload_ref.digest, inline=((env_ref.digest, envelope), (payload_ref.digest, payload))))
        sys.stdout.write(f"ACK {message_id} {env_ref.digest} {payload_ref.digest}\n")
        sys.stdout.flush()

    await asyncio.gather(*(accept(i) for i in range(n)))
    sys.stdout.write("DONE\n")
    sys.stdout.flush()
    await asyncio.sleep(3600)  # the parent kills us with SIGKILL


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else None))
