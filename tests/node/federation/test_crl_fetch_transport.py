"""The CRLs a node takes from its parent on a 国密 network: those of the transport CAs too.

Node TLS there is P-256 under the CA's transport root (docs/architecture.md), and a county CA's
transport intermediate issues its nodes' TLS certificates. The parent's ``crl.pem`` carries that
intermediate's CRL; a child that took only CRLs of CAs chaining to the SM2 root would refuse the
whole update (``PKI_CRL_UNTRUSTED``) and keep a CRL that goes stale.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from types import SimpleNamespace

from exchange_protocol.directory_signing import sign_directory
from node.config import load_config
from node.config_edit import edit_config, set_section_values
from node.directory_source import read_source
from node.federation.crl_fetch import CrlFetcher
from node.ops.metrics import Registry
from node.provision import init_node
from pki import directory_signer
from pki.ca import CertificateAuthority
from pki.crl import build_crl, crl_pem, judge_crl_update
from pki.keystore import write_public_file
from pki.trust import TrustStore
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE

CITY = make_unit_code("11371300MB0000001")
COUNTY = make_unit_code("11371302MB0000001")


def test_a_child_takes_the_transport_intermediates_crl_from_its_parent(tmp_path):
    root = CertificateAuthority.init_root(tmp_path / "ca", "国密吊销分发CA", PASSPHRASE, algorithm="sm2-sm3")
    county_ca = root.create_intermediate(tmp_path / "county-ca", "兰山区CA", PASSPHRASE)
    init_node(tmp_path / "city", "city", root, [{"code": CITY, "name": "市政府办公室"}], PASSPHRASE,
              peer_port=0, local_port=0)
    config, _ = init_node(tmp_path / "county", "county-a", county_ca, [{"code": COUNTY, "name": "区政府办公室"}],
                          PASSPHRASE, peer_port=0, local_port=0)
    edit_config(config.directory, lambda doc: set_section_values(
        doc, "parent", {"node_id": "city", "url": "https://127.0.0.1:7443"}))
    config = load_config(config.directory)
    source = tmp_path / "network.toml"
    source.write_text(f'''network = "国密测试网"
version = 1
[[nodes]]
id = "city"
urls = ["https://127.0.0.1:7443"]
level = "city"
credentials = "{tmp_path / 'city' / 'credentials'}"
[[nodes]]
id = "county-a"
urls = ["https://127.0.0.1:7444"]
level = "county"
parent = "city"
credentials = "{config.credentials_dir}"
[[units]]
code = "{CITY}"
name = "市政府办公室"
level = "city"
node = "city"
[[units]]
code = "{COUNTY}"
name = "区政府办公室"
level = "county"
node = "county-a"
''', "utf-8")
    signer = directory_signer.from_ca(root)
    directory = dataclasses.replace(read_source(source, dt.datetime.now(dt.UTC)),
                                    transport_root=root.transport.root_certificate)
    write_public_file(config.network_directory_path, sign_directory(directory, signer.signer, signer.chain))
    ctx = SimpleNamespace(config=config, trust=TrustStore.of([root.root_certificate]),
                          tls_trust=TrustStore.of([root.transport.root_certificate]),
                          intermediates=(county_ca.certificate,), clock=lambda: dt.datetime.now(dt.UTC))
    fetcher = CrlFetcher(ctx, client=None, registry=Registry())
    known = fetcher._known_cas()
    assert county_ca.transport.certificate in known and root.transport.root_certificate in known
    # what the parent offers — every CA's CRL, the transport CAs' included — is taken whole
    now = dt.datetime.now(dt.UTC)
    offered = b"".join(crl_pem(build_crl(ca, now)) for ca in (root, root.transport, county_ca, county_ca.transport))
    newer = judge_crl_update(offered, [], known)
    assert {c.issuer for c in newer} == {ca.certificate.subject for ca in
                                         (root, root.transport, county_ca, county_ca.transport)}
