"""``gwx node run`` that kills itself with SIGKILL in the middle of a 转发, where a power cut or the OOM
killer could land: after the forward's transaction committed (the cover and the forwarded copies
queued, the 转发 rows written), before its local deliveries were applied.

Usage: python -m tests.node.network.forward_crash_child AT node run --dir DIR

``AT`` is the local delivery the process dies at: 1 — before the cover 通知's (nothing local applied),
2 — before the forwarded copy's (the cover applied, the copy not). Nothing else differs from
``gwx node run``: the product code runs unchanged; only these two methods are wrapped.
"""

from __future__ import annotations

import os
import signal
import sys

from node.cli.main import main
from node.documents.sending import Sending


def arm(at: int) -> None:
    forward, deliver = Sending.forward, Sending._deliver_copies
    seen = {"forwarding": False, "deliveries": 0}

    async def forward_then_die(self, *args, **kwargs):
        seen["forwarding"] = True
        return await forward(self, *args, **kwargs)

    async def deliver_or_die(self, *args, **kwargs):
        if seen["forwarding"]:
            seen["deliveries"] += 1
            if seen["deliveries"] == at:
                sys.stderr.write(f"forward_crash_child: SIGKILL before local delivery {at} of the 转发\n")
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return await deliver(self, *args, **kwargs)

    Sending.forward = forward_then_die  # type: ignore[method-assign]
    Sending._deliver_copies = deliver_or_die  # type: ignore[method-assign]


if __name__ == "__main__":
    arm(int(sys.argv[1]))
    sys.exit(main(sys.argv[2:]))
