"""A renewed TLS certificate taken up by live ``SSLContext``s (``node.federation.tls.reload_certificate``):
a real aiohttp server with the county's certificate and the city's real :class:`PeerClient`, both
reloaded in place (the contexts made as a node's start makes them, ``node_contexts``: the key decrypted
once for both). New handshakes present the new certificate on both sides; a pooled connection
keeps the old one until :meth:`PeerClient.renew_connections` retires it; a file that cannot be
loaded leaves the contexts as they were."""

from __future__ import annotations

import asyncio
import os
import ssl

import pytest
from aiohttp import web

from node.config import Peer
from node.federation.tls import node_contexts, peer_certificate, reload_certificate
from node.federation.transport import PeerClient
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from tests.node.federation.federation_support import provision_county_and_city
from tests.support import PASSPHRASE


@pytest.fixture(scope="module")
def node_dir(tmp_path_factory):
    base = provision_county_and_city(tmp_path_factory.mktemp("tls-reload"), "续期传输CA", {}, {})
    ca = CertificateAuthority.open(base / "ca", PASSPHRASE)
    for node_id in ("county", "city"):
        ca.issue_node(node_id, "127.0.0.1", base / f"{node_id}-renewed", PASSPHRASE, renew=True)
    return base


def serial(path) -> int:
    return load_certificates(path.read_bytes())[0].serial_number


def test_renewed_tls_certificates_are_presented_on_new_connections_both_ways(node_dir):
    county, city = node_dir / "county" / "credentials", node_dir / "city" / "credentials"
    county_new, city_new = node_dir / "county-renewed", node_dir / "city-renewed"

    async def run():
        seen_clients: list[int] = []

        async def directory(request: web.Request) -> web.Response:
            seen_clients.append(peer_certificate(request.transport.get_extra_info("ssl_object")).serial_number)
            return web.Response(body=b"{}", headers={"ETag": '"x"'})

        app = web.Application()
        app.router.add_get("/peer/v1/directory", directory)
        runner = web.AppRunner(app)
        await runner.setup()
        _, server_tls = node_contexts(county / "tls.crt", county / "tls.key", county / "root.crt", PASSPHRASE)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_tls)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        client_tls, _ = node_contexts(city / "tls.crt", city / "tls.key", city / "root.crt", PASSPHRASE)
        seen_servers: list[int] = []
        client = PeerClient(client_tls, judge=lambda cert, chain: seen_servers.append(cert.serial_number))
        peer = Peer("county", f"https://127.0.0.1:{port}")

        async def ask() -> None:
            assert await client.fetch_directory(peer, None) == (b"{}", '"x"')

        try:
            await ask()
            assert (seen_servers, seen_clients) == ([serial(county / "tls.crt")], [serial(city / "tls.crt")])
            reload_certificate([server_tls], county_new / "tls.crt", county_new / "tls.key", PASSPHRASE)
            reload_certificate([client_tls], city_new / "tls.crt", city_new / "tls.key", PASSPHRASE)
            await ask()  # the pooled connection: its handshake is done, it keeps the old certificates
            assert seen_clients[-1] == serial(city / "tls.crt") and len(seen_servers) == 1
            client.renew_connections()
            await ask()  # a new connection: both sides present the renewed certificates
            assert seen_servers[-1] == serial(county_new / "tls.crt")
            assert seen_clients[-1] == serial(city_new / "tls.crt")
            # A certificate without its key is refused before any context is touched.
            with pytest.raises(ssl.SSLError):
                reload_certificate([server_tls], county / "tls.crt", county_new / "tls.key", PASSPHRASE)
            client.renew_connections()
            await ask()
            assert seen_servers[-1] == serial(county_new / "tls.crt")
        finally:
            await client.close()
            await runner.cleanup()

    asyncio.run(run())


def test_the_contexts_are_made_when_the_os_refuses_an_in_memory_key_file(node_dir, monkeypatch):
    """A sandbox that refuses memfd_create (a seccomp filter) must not stop a node's start: each
    context then decrypts tls.key itself, and mutual TLS works as before."""
    def refused(*args):
        raise PermissionError(1, "Operation not permitted")
    monkeypatch.setattr(os, "memfd_create", refused)
    county, city = node_dir / "county" / "credentials", node_dir / "city" / "credentials"
    _, server_tls = node_contexts(county / "tls.crt", county / "tls.key", county / "root.crt", PASSPHRASE)
    client_tls, _ = node_contexts(city / "tls.crt", city / "tls.key", city / "root.crt", PASSPHRASE)

    async def handshake() -> tuple[int, int]:
        seen: list[int] = []

        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            seen.append(peer_certificate(writer.get_extra_info("ssl_object")).serial_number)
            writer.close()
        server = await asyncio.start_server(serve, "127.0.0.1", 0, ssl=server_tls)
        port = server.sockets[0].getsockname()[1]
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=client_tls,
                                                           server_hostname="127.0.0.1")
            presented = peer_certificate(writer.get_extra_info("ssl_object")).serial_number
            await reader.read()
            writer.close()
            return presented, seen[0]
        finally:
            server.close()
            await server.wait_closed()
    assert asyncio.run(handshake()) == (serial(county / "tls.crt"), serial(city / "tls.crt"))
