"""Private keys at rest: encrypted, owner-only, written atomically; checked with openssl."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest
from asn1crypto import keys as a_keys
from asn1crypto import pem as asn1_pem
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from pki.errors import InsecureKeyFile, KeyStoreError, WrongPassphrase
from pki.keystore import (
    read_private_key,
    write_private_key,
    write_public_file,
    write_secret_file,
)
from pki.sm2 import Sm2PrivateKey
from tests.support import PASSPHRASE, PASSPHRASE_TEXT


@pytest.fixture(scope="module")
def ec_key():
    return ec.generate_private_key(ec.SECP256R1())


@pytest.fixture(scope="module")
def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def _public_der(key) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)


@pytest.mark.parametrize("key_fixture", ["ec_key", "rsa_key"])
def test_round_trip_and_owner_only_mode(request, tmp_path, key_fixture):
    key = request.getfixturevalue(key_fixture)
    old = os.umask(0)  # even a careless umask must not widen a key file
    try:
        path = write_private_key(tmp_path / "keys" / "node.key", key, PASSPHRASE)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600
    assert _public_der(read_private_key(path, PASSPHRASE)) == _public_der(key)


def test_key_is_encrypted_at_rest_per_openssl(tmp_path, ec_key):
    path = write_private_key(tmp_path / "k.pem", ec_key, PASSPHRASE)
    text = path.read_text()
    assert "-----BEGIN ENCRYPTED PRIVATE KEY-----" in text
    der = ec_key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                               serialization.NoEncryption())
    assert der not in path.read_bytes()
    wrong = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", "pass:wrong-passphrase", "-noout"],
                           capture_output=True)
    assert wrong.returncode != 0
    right = subprocess.run(["openssl", "pkey", "-in", str(path), "-passin", f"pass:{PASSPHRASE_TEXT}",
                            "-pubout", "-outform", "DER"], capture_output=True)
    assert right.returncode == 0, right.stderr
    assert right.stdout == _public_der(ec_key)


def test_wrong_passphrase_is_typed(tmp_path, ec_key):
    path = write_private_key(tmp_path / "k.pem", ec_key, PASSPHRASE)
    with pytest.raises(WrongPassphrase) as err:
        read_private_key(path, b"not the passphrase")
    assert err.value.code == "PKI_WRONG_PASSPHRASE"
    assert PASSPHRASE_TEXT not in str(err.value)


@pytest.mark.parametrize("passphrase", [b"", b"short", b"7chars!"])
def test_short_passphrase_is_refused_and_nothing_written(tmp_path, ec_key, passphrase):
    with pytest.raises(KeyStoreError) as err:
        write_private_key(tmp_path / "k.pem", ec_key, passphrase)
    assert err.value.code == "PKI_WEAK_PASSPHRASE"
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644, 0o700 | 0o004, 0o620])
def test_key_readable_or_writable_by_others_is_refused(tmp_path, ec_key, mode):
    path = write_private_key(tmp_path / "k.pem", ec_key, PASSPHRASE)
    path.chmod(mode)
    with pytest.raises(InsecureKeyFile) as err:
        read_private_key(path, PASSPHRASE)
    assert err.value.code == "PKI_INSECURE_KEY_FILE"
    assert "chmod 600" in err.value.message
    path.chmod(0o400)  # owner read-only is fine
    assert _public_der(read_private_key(path, PASSPHRASE)) == _public_der(ec_key)


def test_writes_are_atomic_and_leave_no_temporary_files(tmp_path, ec_key, rsa_key):
    path = write_private_key(tmp_path / "k.pem", ec_key, PASSPHRASE)
    write_private_key(path, rsa_key, PASSPHRASE)  # replacing a key is a rename, not a rewrite in place
    write_secret_file(tmp_path / "token", b"s3cret")
    write_public_file(tmp_path / "ca.crt", b"-----BEGIN CERTIFICATE-----\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ca.crt", "k.pem", "token"]
    assert _public_der(read_private_key(path, PASSPHRASE)) == _public_der(rsa_key)
    assert _mode(tmp_path / "token") == 0o600


def test_leftover_temp_file_from_a_crash_is_never_reused(tmp_path, ec_key):
    # A crashed earlier write (same pid after a restart in a container) left a world-readable file
    # under the temp name older versions used; temp names are unpredictable now, so it is left alone.
    stale = tmp_path / f".k.pem.tmp{os.getpid()}"
    stale.write_bytes(b"garbage from a crash")
    stale.chmod(0o644)
    path = write_private_key(tmp_path / "k.pem", ec_key, PASSPHRASE)
    assert _mode(path) == 0o600
    assert stale.read_bytes() == b"garbage from a crash"
    assert _public_der(read_private_key(path, PASSPHRASE)) == _public_der(ec_key)


@pytest.mark.parametrize("writer", [write_secret_file, write_public_file])
def test_a_symlink_planted_at_a_predictable_temp_name_is_not_followed(tmp_path, writer):
    victim = tmp_path / "elsewhere" / "victim"
    victim.parent.mkdir()
    victim.write_bytes(b"untouched")
    target_dir = tmp_path / "keys"
    target_dir.mkdir()
    for name in (f".k.pem.tmp{os.getpid()}", ".k.pem.tmp", ".k.pem."):
        (target_dir / name).symlink_to(victim)
    writer(target_dir / "k.pem", b"the new content")
    assert victim.read_bytes() == b"untouched"
    assert (target_dir / "k.pem").read_bytes() == b"the new content"
    assert not (target_dir / "k.pem").is_symlink()


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    (tmp_path / "k.pem").mkdir()  # the rename onto a directory fails after the temp file was written
    with pytest.raises(OSError):
        write_secret_file(tmp_path / "k.pem", b"s3cret")
    with pytest.raises(TypeError):
        write_public_file(tmp_path / "ca.crt", "not bytes")  # type: ignore[arg-type]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["k.pem"]


def test_large_contents_are_written_whole(tmp_path):
    data = os.urandom(3 * 1024 * 1024 + 7)
    assert write_secret_file(tmp_path / "big", data).read_bytes() == data
    assert _mode(tmp_path / "big") == 0o600
    assert _mode(write_public_file(tmp_path / "pub", data)) == 0o644


def test_missing_and_malformed_key_files_are_typed(tmp_path):
    with pytest.raises(KeyStoreError) as err:
        read_private_key(tmp_path / "absent.key", PASSPHRASE)
    assert err.value.code == "PKI_KEY_MISSING"
    junk = write_secret_file(tmp_path / "junk.key", b"-----BEGIN PRIVATE KEY-----\nnot base64\n")
    with pytest.raises(KeyStoreError) as err:
        read_private_key(junk, PASSPHRASE)
    assert err.value.code == "PKI_KEY_MALFORMED"


def _pbkdf2_parameters(pem: bytes) -> tuple[int, int, str, str]:
    """Iterations, salt length, PRF and cipher of an encrypted PKCS#8 PEM, read by asn1crypto."""
    _, _, der = asn1_pem.unarmor(pem)
    pbes2 = a_keys.EncryptedPrivateKeyInfo.load(der)["encryption_algorithm"]["parameters"]
    kdf = pbes2["key_derivation_func"]["parameters"]
    return (kdf["iteration_count"].native, len(kdf["salt"].native), kdf["prf"]["algorithm"].native,
            pbes2["encryption_scheme"]["algorithm"].dotted)


@pytest.mark.parametrize("make", [lambda: ec.generate_private_key(ec.SECP256R1()), Sm2PrivateKey.generate],
                         ids=["p256", "sm2"])
def test_keys_at_rest_use_a_long_salt_and_many_pbkdf2_iterations(make, tmp_path):
    key = make()
    path = write_private_key(tmp_path / "k.key", key, PASSPHRASE)
    iterations, salt_len, prf, cipher = _pbkdf2_parameters(path.read_bytes())
    assert iterations >= 100_000 and salt_len >= 16 and prf == "sha256"
    assert cipher == ("1.2.156.10197.1.104.2" if isinstance(key, Sm2PrivateKey)  # SM4-CBC
                      else "2.16.840.1.101.3.4.1.42")  # AES-256-CBC
    assert read_private_key(path, PASSPHRASE).public_key() == key.public_key()
