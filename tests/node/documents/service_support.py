"""A county node's real document service over its own store, for the service's tests.

Provisioned as ``gwx node init`` provisions it (our own CA, real keys), with the city as the peer
of the sending unit; the county's queue to the city is stopped, so what its clerks send stays in
its drafts to be looked at. The only thing not real is that nothing is sent.
"""

from __future__ import annotations

from exchange_protocol.ids import new_id
from exchange_protocol.kinds import Kind, Role
from exchange_protocol.states import ReceiverStatus
from node.api.auth import Principal
from node.documents.service import DocumentService
from node.federation.outbound import Outbound
from node.federation.tls import client_context
from node.federation.transport import PeerClient
from node.ops.metrics import Registry
from node.store import InboxRow
from node.store.opener import open_store
from pki.unit_code import make_unit_code
from tests.node.federation.federation_support import node_context, provision_county_and_city
from tests.support import PASSPHRASE

UNITS = [make_unit_code(f"54371302MA{2000 + i:07d}") for i in range(16)]  # a township's villages
SENDER = make_unit_code("11371300MB0000071")  # the city government office


def provision(base):
    return provision_county_and_city(base, "签收合并测试CA", {u: f"第{i}村村民委员会" for i, u in enumerate(UNITS)},
                                     {SENDER: "市政府办公室"})


class County:
    """The county node's document service over its own store, wired as the runner wires it. Its
    queue to the city is stopped: what the clerks' 签收 send stays in the drafts to be looked at."""

    @classmethod
    async def open(cls, node_dir, data) -> County:
        self = cls()
        self.ctx = node_context(node_dir / "county")
        creds = self.ctx.config.credentials_dir
        self.store = await open_store(data, node_id="county")
        self.outbound = Outbound(self.ctx, self.store, PeerClient(client_context(
            creds / "tls.crt", creds / "tls.key", self.ctx.config.trust_root_path, PASSPHRASE)), Registry())
        await self.outbound.stop(0)  # nothing is sent in these tests
        self.service = DocumentService(self.ctx, self.store, self.outbound, Registry())
        return self

    async def close(self) -> None:
        await self.outbound.client.close()
        await self.store.close()

    async def delivered(self, units) -> str:
        """The city's 通知 in each unit's inbox, as the processor places it; returns its doc id."""
        now = self.ctx.clock()
        doc_id, message_id = new_id(now), new_id(now)
        package = await self.store.blobs.put(b"the package")
        for unit in units:
            await self.store.messages.add_inbox(InboxRow(
                doc_id=doc_id, unit=unit, role=Role.MAIN.value, from_unit=SENDER, title="关于冬季防火的通知",
                kind=Kind.NOTICE.value, status=ReceiverStatus.PENDING.value, package_digest=package.digest,
                received_at=now, message_id=message_id), actor="node:city")
        return doc_id


def clerk(unit: str) -> Principal:
    return Principal(f"t-{unit}", f"收发员{unit[-4:]}", "clerk", unit)
