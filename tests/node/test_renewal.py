"""node.renewal and ``gwx node renew``: installing renewed credentials beside the current ones, the
overlap during which the previous encryption key is kept, its end, refusals that change nothing,
and an install interrupted at any step leaving one consistent set."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import threading
from pathlib import Path

import pytest

from exchange_protocol.envelope_crypto import Recipient, decrypt_bytes, encrypt_bytes
from node.config import load_config
from node.context import NodeCredentials
from node.provision import init_node
from node.renewal import (
    INCOMING,
    READY,
    RenewalRefused,
    credentials_lock,
    finish_pending,
    install_renewal,
    previous_sets,
    read_credential_set,
)
from pki.ca import CertificateAuthority
from pki.certificates import load_certificates
from pki.errors import GwxError
from pki.keystore import write_public_file
from pki.unit_code import make_unit_code
from tests.support import PASSPHRASE, PASSPHRASE_TEXT, run_gwx

UNIT = make_unit_code("11371302MB0000091")
@pytest.fixture(scope="module")
def _provisioned(tmp_path_factory):
    """``provisioned(algorithm)``: a CA, a node directory (gwx node init) and renewed credentials
    issued for it, made once per module and algorithm — the tests copy them (:func:`node`)."""
    made: dict[str, Path] = {}

    def provisioned(algorithm: str) -> Path:
        if algorithm not in made:
            base = tmp_path_factory.mktemp(f"renewal-{algorithm}")
            ca = CertificateAuthority.init_root(base / "ca", "续期测试CA", PASSPHRASE, algorithm=algorithm)
            init_node(base / "node", "county-r", ca, [{"code": UNIT, "name": "兰山区某局"}], PASSPHRASE,
                      peer_port=0, local_port=0)
            ca.issue_node("county-r", "127.0.0.1", base / "renewed", PASSPHRASE, renew=True)
            made[algorithm] = base
        return made[algorithm]
    return provisioned


@pytest.fixture
def node(tmp_path, request, _provisioned):
    """A node directory (gwx node init), its CA, and renewed credentials issued for it; P-256 unless the
    test asks for another network profile (``indirect`` parametrisation with the CA's algorithm). A
    copy of its own of the module's (the CA's records, the node's keys, the renewed set), which
    the test changes as it likes: provisioning writes ten keys of 100,000 PBKDF2 rounds, a copy none."""
    base = _provisioned(getattr(request, "param", "ecdsa-p256-sha256"))
    for part in ("ca", "node", "renewed"):
        shutil.copytree(base / part, tmp_path / part)
    return (CertificateAuthority.open(tmp_path / "ca", PASSPHRASE), load_config(tmp_path / "node"),
            tmp_path / "renewed")


@pytest.fixture
def now():  # the time of the test itself: a suite run takes minutes, fresh certificates must be valid
    return dt.datetime.now(dt.UTC).replace(microsecond=0)


def leaf(path: Path):
    return load_certificates(path.read_bytes())[0]


def serials(directory: Path) -> dict[str, int]:
    return {role: leaf(directory / f"{role}.crt").serial_number for role in ("tls", "sign", "enc")}


@pytest.mark.parametrize("node", ["ecdsa-p256-sha256", "sm2-sm3"], ids=["p256", "sm"], indirect=True)
def test_a_renewal_puts_the_new_set_in_place_and_keeps_the_previous_encryption_key_for_the_overlap(node, now):
    _, config, renewed = node
    creds = config.credentials_dir
    before, old_enc = serials(creds), leaf(creds / "enc.crt")
    sealed_for_old = encrypt_bytes(b"queued before the renewal", Recipient(old_enc))
    previous = install_renewal(creds, config.node_id, read_credential_set(renewed, PASSPHRASE), PASSPHRASE,
                               overlap=dt.timedelta(hours=6), now=now)
    assert serials(creds) == serials(renewed) and not set(before.values()) & set(serials(creds).values())
    assert previous.until == now + dt.timedelta(hours=6) and previous.certificates["enc"] == old_enc
    # Only what the overlap needs is kept: the previous certificates and the encryption key.
    assert sorted(p.name for p in previous.path.iterdir()) == ["enc.crt", "enc.key", "overlap.json", "sign.crt",
                                                               "tls.crt"]
    assert oct(previous.path.stat().st_mode & 0o777) == "0o700"
    assert not (creds / INCOMING).exists()
    loaded = NodeCredentials.load(config, PASSPHRASE, now + dt.timedelta(hours=1))
    assert loaded.signer.certificate.serial_number == serials(renewed)["sign"]
    assert decrypt_bytes(sealed_for_old, (loaded.decryption_key, *loaded.previous_keys)) == b"queued before the renewal"
    # The overlap over: the key is destroyed on the next load, and what was sealed for it no longer opens.
    after = NodeCredentials.load(config, PASSPHRASE, now + dt.timedelta(hours=6, seconds=1))
    assert not after.previous_keys and not previous.path.exists()
    with pytest.raises(GwxError) as info:
        decrypt_bytes(sealed_for_old, (after.decryption_key, *after.previous_keys))
    assert info.value.code == "ENV_NO_RECIPIENT_INFO"


def test_the_overlap_never_outlasts_the_previous_encryption_certificate(node, now):
    _, config, renewed = node
    old_expiry = leaf(config.credentials_dir / "enc.crt").not_valid_after_utc
    previous = install_renewal(config.credentials_dir, config.node_id, read_credential_set(renewed, PASSPHRASE),
                               PASSPHRASE, overlap=dt.timedelta(days=100_000), now=now)
    assert previous.until == old_expiry


def test_credentials_the_node_cannot_use_are_refused_and_change_nothing(node, tmp_path, now):
    ca, config, renewed = node
    creds = config.credentials_dir
    before = {p.name: p.read_bytes() for p in creds.iterdir() if p.is_file() and p.name != ".lock"}
    other = tmp_path / "other"
    ca.issue_node("county-x", "127.0.0.1", other, PASSPHRASE)
    mixed = tmp_path / "mixed"
    shutil.copytree(renewed, mixed)
    shutil.copy(other / "enc.key", mixed / "enc.key")
    rogue = CertificateAuthority.init_root(tmp_path / "rogue", "别的CA", PASSPHRASE)
    rogue.issue_node("county-r", "127.0.0.1", tmp_path / "rogue-node", PASSPHRASE)
    cases = {other: "names node 'county-x'", mixed: "enc.key is not the key of enc.crt",
             creds: "current ones", tmp_path / "rogue-node": "tls-server"}
    for source, words in cases.items():
        with pytest.raises(RenewalRefused) as info:
            install_renewal(creds, config.node_id, read_credential_set(source, PASSPHRASE), PASSPHRASE, now=now)
        assert info.value.code == "NODE_RENEWAL_REFUSED" and words in info.value.message
    elsewhere = tmp_path / "elsewhere"
    ca.issue_node("county-r", "10.9.9.9", elsewhere, PASSPHRASE, renew=True)
    for host in ("127.0.0.1", "county-r.example"):  # where peers reach the node: the new tls.crt must name it
        with pytest.raises(RenewalRefused) as info:
            install_renewal(creds, config.node_id, read_credential_set(elsewhere, PASSPHRASE), PASSPHRASE, now=now,
                            host=host)
        assert f"does not name {host}" in info.value.message
    with pytest.raises(GwxError) as wrong:  # the node passphrase must open the node's keys before anything is written
        install_renewal(creds, config.node_id, read_credential_set(renewed, PASSPHRASE), b"not the passphrase",
                        now=now)
    assert wrong.value.code == "PKI_WRONG_PASSPHRASE"
    assert {p.name: p.read_bytes() for p in creds.iterdir() if p.is_file() and p.name != ".lock"} == before
    assert not (creds / "previous").exists() and not (creds / INCOMING).exists()


def test_an_interrupted_install_leaves_one_consistent_set(node, now):
    _, config, renewed = node
    creds = config.credentials_dir
    before = serials(creds)
    # Interrupted while staging (no "ready" mark): the new set is discarded, the current one stays.
    (creds / INCOMING).mkdir()
    shutil.copy(renewed / "tls.crt", creds / INCOMING / "tls.crt")
    finish_pending(creds)
    assert serials(creds) == before and not (creds / INCOMING).exists()
    # Interrupted while moving a complete set in: it is completed, not mixed with the old one.
    incoming = creds / INCOMING
    incoming.mkdir()
    for name in ("tls.key", "tls.crt", "sign.key", "sign.crt", "enc.key", "enc.crt"):
        shutil.copy(renewed / name, incoming / name)
    write_public_file(incoming / READY, b"")
    for name in ("tls.key", "tls.crt", "sign.key"):  # the first three already moved
        (incoming / name).replace(creds / name)
    loaded = NodeCredentials.load(config, PASSPHRASE, now)  # a node starting finishes the move first
    assert serials(creds) == serials(renewed) and not incoming.exists()
    assert loaded.decryption_key.certificate.serial_number == serials(renewed)["enc"]


def test_a_previous_set_that_cannot_be_read_is_kept_on_disk_and_not_used(node, tmp_path, now):
    _, config, renewed = node
    previous = install_renewal(config.credentials_dir, config.node_id, read_credential_set(renewed, PASSPHRASE),
                               PASSPHRASE, now=now)
    (previous.path / "overlap.json").write_text("{not json")
    assert previous_sets(config.credentials_dir, now) == [] and previous.path.exists()


def test_gwx_node_renew_installs_on_a_stopped_node_and_says_what_follows(node, tmp_path):
    ca, config, renewed = node
    env = {"GWX_PASSPHRASE": PASSPHRASE_TEXT}
    bad = run_gwx("node", "renew", "--dir", config.directory, "--from", renewed, "--overlap", "a week", env=env)
    assert bad.returncode == 2 and "NODE_RENEWAL_REFUSED" in bad.stderr.decode() and "Traceback" not in bad.stderr.decode()
    (tmp_path / "ca-pass").write_text(PASSPHRASE_TEXT)
    ca.issue_node("county-r", "10.9.9.9", tmp_path / "elsewhere", PASSPHRASE, renew=True)
    wrong_host = run_gwx("node", "renew", "--dir", config.directory, "--from", tmp_path / "elsewhere", env=env)
    assert wrong_host.returncode == 2 and "does not name 127.0.0.1" in wrong_host.stderr.decode()
    ca.issue_node("county-r", "127.0.0.1", tmp_path / "under-another", b"the CA admin's own", renew=True)
    locked = run_gwx("node", "renew", "--dir", config.directory, "--from", tmp_path / "under-another", env=env)
    assert locked.returncode == 3 and "PKI_WRONG_PASSPHRASE" in locked.stderr.decode()
    assert "--from-passphrase-file" in locked.stderr.decode()  # what to do about it
    out = run_gwx("node", "renew", "--dir", config.directory, "--from", renewed, "--overlap", "36h",
                  "--from-passphrase-file", tmp_path / "ca-pass", env=env)
    assert out.returncode == 0, out.stderr.decode()
    text = out.stdout.decode()
    assert "not running" in text and "previous encryption key kept until" in text and "previous = [" in text
    assert serials(load_config(config.directory).credentials_dir) == serials(renewed)
    [kept] = (config.credentials_dir / "previous").iterdir()
    until = dt.datetime.fromisoformat(json.loads((kept / "overlap.json").read_text())["until"].replace("Z", "+00:00"))
    assert dt.timedelta(hours=35) < until - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=36)
    again = run_gwx("node", "renew", "--dir", config.directory, "--from", renewed, env=env)
    assert again.returncode == 2 and "nothing to renew" in again.stderr.decode()


def test_a_node_loading_while_a_renewal_is_being_written_waits_for_it(node, now):
    """Without the lock a node reloading mid-install would take the unmarked incoming/ for the
    leftover of a crash and delete it under the renewal's feet."""
    _, config, renewed = node
    creds = config.credentials_dir
    result: list = []
    with credentials_lock(creds):
        incoming = creds / INCOMING
        incoming.mkdir()
        for name in ("tls.key", "tls.crt", "sign.key", "sign.crt", "enc.key", "enc.crt"):
            shutil.copy(renewed / name, incoming / name)
        loader = threading.Thread(target=lambda: result.append(NodeCredentials.load(config, PASSPHRASE, now)))
        loader.start()
        loader.join(0.5)
        assert loader.is_alive() and incoming.exists()  # waiting, and the renewal's files untouched
        write_public_file(incoming / READY, b"")
    loader.join(10)
    assert result[0].signer.certificate.serial_number == serials(renewed)["sign"]


def test_an_sm_nodes_renewal_is_judged_and_installed(tmp_path, now):
    """On a 国密 network the signing and encryption keys are SM2 (which pyca cannot read from a
    certificate) and the TLS one P-256 under the transport root: both are judged, not a traceback."""
    ca = CertificateAuthority.init_root(tmp_path / "ca", "国密续期CA", PASSPHRASE, algorithm="sm2-sm3")
    config, _ = init_node(tmp_path / "node", "county-s", ca, [{"code": UNIT, "name": "兰山区某局"}], PASSPHRASE,
                          peer_port=0, local_port=0)
    ca.issue_node("county-s", "127.0.0.1", tmp_path / "renewed", PASSPHRASE, renew=True)
    new = read_credential_set(tmp_path / "renewed", PASSPHRASE)
    mixed = read_credential_set(tmp_path / "renewed", PASSPHRASE)
    mixed.keys["sign"] = mixed.keys["enc"]  # another SM2 key than its certificate's
    with pytest.raises(RenewalRefused, match="sign.key is not the key of sign.crt"):
        install_renewal(config.credentials_dir, "county-s", mixed, PASSPHRASE, now=now)
    install_renewal(config.credentials_dir, "county-s", new, PASSPHRASE, now=now)
    for role in ("tls", "sign", "enc"):
        assert load_certificates((config.credentials_dir / f"{role}.crt").read_bytes())[0] == new.leaf(role)
