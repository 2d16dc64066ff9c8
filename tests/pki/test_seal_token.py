"""pki.seal_token: where a token-held seal key is, and the PIN's source — refused when unusable."""

from __future__ import annotations

import pytest

from pki.errors import GwxError, TokenConfigInvalid
from pki.seal_enrolment import create_token_seal_request, seal_key_of
from pki.seal_store import load_seal_credential
from pki.seal_token import TOKEN_FILE, TokenRef, read_token_ref
from tests.pki.softhsm import softhsm_fixture  # noqa: F401  (the fixture: one token per test process)
from tests.support import PASSPHRASE

UNIT = "11100000000013127D"


@pytest.fixture
def ca(tmp_path, new_root_ca):
    return new_root_ca(tmp_path / "ca", "临沂市电子政务CA")


def _pin_file(path, pin: str, mode: int = 0o600):
    path.write_text(pin + "\n")
    path.chmod(mode)
    return path


def test_token_toml_round_trips_and_a_key_file_directory_has_none(tmp_path):
    ref = TokenRef("/usr/lib/x.so", 'ukey "7"', "seal-1", pin_env="GWX_SEAL_PIN")
    (tmp_path / TOKEN_FILE).write_text(ref.toml())
    assert read_token_ref(tmp_path) == ref
    assert read_token_ref(tmp_path / "elsewhere") is None


@pytest.mark.parametrize("text, code", [
    ('module = "m"\ntoken = "t"\nkey_label = "k"\n', "SEAL_TOKEN_PIN_MISSING"),        # no PIN source
    ('module = "m"\ntoken = "t"\nkey_label = "k"\npin_file = "f"\npin_env = "E"\n', "SEAL_TOKEN_PIN_MISSING"),
    ('module = "m"\ntoken = ""\nkey_label = "k"\npin_env = "E"\n', "SEAL_TOKEN_CONFIG"),
    ('module = "m"\ntoken = "t"\nkey_label = "k"\npin_env = "E"\npin = "1234"\n', "SEAL_TOKEN_CONFIG"),  # no PINs here
    ('module = "m"\ntoken = "t"\nkey_label = 7\npin_env = "E"\n', "SEAL_TOKEN_CONFIG"),
    ("module = \n", "SEAL_TOKEN_CONFIG"),
])
def test_a_bad_token_toml_is_refused_with_its_code(tmp_path, text, code):
    (tmp_path / TOKEN_FILE).write_text(text)
    with pytest.raises(TokenConfigInvalid) as caught:
        read_token_ref(tmp_path)
    assert caught.value.code == code


def test_the_pin_comes_from_an_owner_only_file_or_the_environment(tmp_path, monkeypatch):
    pin = "pin-ukey-Q7"  # not digits: the temporary directory's own name (pytest-1234) must not look like it
    assert TokenRef("m", "t", "k", pin_file=str(_pin_file(tmp_path / "pin", pin))).pin() == pin
    exposed = TokenRef("m", "t", "k", pin_file=str(_pin_file(tmp_path / "pin2", pin, 0o644)))
    with pytest.raises(TokenConfigInvalid) as caught:
        exposed.pin()
    assert caught.value.code == "SEAL_TOKEN_PIN_EXPOSED" and pin not in caught.value.message
    with pytest.raises(TokenConfigInvalid) as caught:
        TokenRef("m", "t", "k", pin_file=str(tmp_path / "absent")).pin()
    assert caught.value.code == "SEAL_TOKEN_PIN_MISSING"
    monkeypatch.delenv("GWX_TEST_PIN", raising=False)
    with pytest.raises(TokenConfigInvalid):
        TokenRef("m", "t", "k", pin_env="GWX_TEST_PIN").pin()
    monkeypatch.setenv("GWX_TEST_PIN", "5678")
    assert TokenRef("m", "t", "k", pin_env="GWX_TEST_PIN").pin() == "5678"


def test_a_seal_key_made_on_the_token_signs_the_unit_s_request_and_its_seal(tmp_path, softhsm, ca):
    from cryptography.hazmat.primitives.asymmetric import ec

    from pki.seal_enrolment import install_seal_response, issue_seal_for_request

    ref = TokenRef(softhsm.module, softhsm.token_label, "seal-token-test",
                   pin_file=str(_pin_file(tmp_path / "pin", softhsm.pin)))
    seal_dir = tmp_path / "units" / UNIT
    request = create_token_seal_request(seal_dir, UNIT, "测试单位", ref)
    assert not (seal_dir / "seal.key").exists() and read_token_ref(seal_dir) == ref
    response = issue_seal_for_request(ca, request, UNIT, "测试单位")
    install_seal_response(seal_dir, response.response, ca.certificate, seal_key_of(seal_dir, PASSPHRASE))
    credential = load_seal_credential(seal_dir, b"not the node passphrase: the token needs its PIN only")
    try:
        signature = credential.signer.sign(b"a document's signed bytes")
        credential.certificate.public_key().verify(signature, b"a document's signed bytes",
                                                   ec.ECDSA(credential.signer.algorithm.hash()))
    finally:
        credential.signer.close()  # its login would outlive the test (other tests check a wrong PIN)
    # A second key under the same label would shadow this one: refused, nothing written.
    with pytest.raises(GwxError) as caught:
        create_token_seal_request(tmp_path / "other", UNIT, "测试单位", ref)
    assert caught.value.code == "PKI_HSM_KEY_EXISTS" and not (tmp_path / "other" / TOKEN_FILE).exists()


def test_a_request_that_fails_after_the_key_was_made_leaves_neither_key_nor_token_toml(tmp_path, softhsm,
                                                                                        monkeypatch):
    import pki.seal_enrolment as enrolment

    ref = TokenRef(softhsm.module, softhsm.token_label, "seal-failed-request",
                   pin_file=str(_pin_file(tmp_path / "pin", softhsm.pin)))
    seal_dir = tmp_path / "units" / UNIT

    def broken(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(enrolment, "write_seal_request", broken)
    with pytest.raises(OSError):
        create_token_seal_request(seal_dir, UNIT, "测试单位", ref)
    assert not (seal_dir / TOKEN_FILE).exists()
    monkeypatch.undo()
    # The retry, same label, finds the token as it was.
    create_token_seal_request(seal_dir, UNIT, "测试单位", ref)
    assert read_token_ref(seal_dir) == ref and (seal_dir / "seal.req.pem").exists()
