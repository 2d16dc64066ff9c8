"""Subprocess for the crash test: accepts envelopes in a loop, printing each id after its commit.

Usage: python -m tests.node.store.crash_child DATA_DIR RUN_ID [POSTGRESQL_DSN]
Each printed line ``ACK <message_id> <digest>`` is an acknowledgement: written only after
``store.accept_inbound`` returned, i.e. after the blob was fsynced and the row committed. The parent
kills this process with SIGKILL at a random moment and checks that every acknowledged id survived.
"""

from __future__ import annotations

import asyncio
import os
import random
import sys

from node.config import StoreSettings
from node.store import InboundEnvelope, NodeStore, OutboundItem
from node.store.opener import open_store


async def worker(store: NodeStore, run: str, n: int, rng: random.Random) -> None:
    sent: list[InboundEnvelope] = []
    counter = 0
    while True:
        if sent and rng.random() < 0.1:
            env = rng.choice(sent)  # a peer retrying: must not create a second row
        else:
            counter += 1
            message_id = f"{run}-{n}-{counter}"
            data = message_id.encode() + os.urandom(rng.randint(200, 20_000))
            ref = await store.blobs.put(data)
            env = InboundEnvelope(message_id, ref.digest, ref.digest, "node-a", b"receipt:" + message_id.encode(),
                                  "document", ref.size)
        forward = OutboundItem(env.message_id, "node-c", env.blob_digest, env.size or 0, "document")
        accepted = await store.accept_inbound(env, forward=forward)
        sys.stdout.write(f"ACK {env.message_id} {env.envelope_digest} {int(accepted.new)}\n")
        sys.stdout.flush()
        sent.append(env)


async def main(data_dir: str, run: str, dsn: str | None) -> None:
    settings = StoreSettings("postgresql", dsn) if dsn else StoreSettings()
    store = await open_store(data_dir, settings=settings)
    sys.stdout.write("READY\n")
    sys.stdout.flush()
    await asyncio.gather(*(worker(store, run, n, random.Random(f"{run}/{n}")) for n in range(16)))
    await store.close()  # never reached: the parent kills us


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] if len(sys.argv) > 3 else None))
