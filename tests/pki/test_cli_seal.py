"""``gwx pki issue-seal`` / ``verify-seal`` as an operator uses them, checked with openssl."""

from __future__ import annotations

import io
import json
import stat

import pytest
from PIL import Image

from node.cli.main import main
from pki.seal import parse_seal
from tests.pki.seal_support import OTHER_UNIT, UNIT, UNIT_NAME
from tests.support import PASSPHRASE_TEXT, run_openssl


@pytest.fixture
def ca_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GWX_PASSPHRASE", PASSPHRASE_TEXT)
    assert main(["pki", "init-root", "--dir", str(tmp_path / "ca"), "--name", "测试网络根CA"]) == 0
    return tmp_path / "ca"


def _issue(ca_dir, out, *extra) -> int:
    return main(["pki", "issue-seal", "--ca", str(ca_dir), "--unit", UNIT, "--name", UNIT_NAME,
                 "--out", str(out), *map(str, extra)])


def _verify(seal, ca_dir, *extra) -> int:
    return main(["pki", "verify-seal", str(seal), "--trust", str(ca_dir / "root.crt"), *map(str, extra)])


def test_issue_then_verify(ca_dir, tmp_path, capsys):
    out = tmp_path / "seal"
    assert _issue(ca_dir, out, "--valid-days", 100) == 0
    assert stat.S_IMODE((out / "seal.key").stat().st_mode) == 0o600
    assert b"ENCRYPTED PRIVATE KEY" in (out / "seal.key").read_bytes()
    # openssl: the seal certificate chains to the root and the key belongs to it
    assert b": OK" in run_openssl("verify", "-CAfile", ca_dir / "root.crt", out / "seal.crt").stdout
    pub_cert = run_openssl("x509", "-in", out / "seal.crt", "-pubkey", "-noout").stdout
    pub_key = run_openssl("pkey", "-in", out / "seal.key", "-passin", f"pass:{PASSPHRASE_TEXT}",
                          "-pubout").stdout
    assert pub_cert == pub_key
    seal = parse_seal((out / "seal.esl").read_bytes())
    assert seal.unit_code == UNIT and (seal.valid_end - seal.valid_start).days == 100
    capsys.readouterr()

    assert _verify(out / "seal.esl", ca_dir, "--unit", UNIT) == 0
    text = capsys.readouterr().out
    assert "seal OK" in text and UNIT_NAME in text and UNIT in text

    assert _verify(out / "seal.esl", ca_dir, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["ok"] is True and result["name"] == UNIT_NAME and result["revocation_checked"] is False


def test_verify_failures_exit_nonzero_with_their_code(ca_dir, tmp_path, capsys):
    out = tmp_path / "seal"
    assert _issue(ca_dir, out) == 0
    capsys.readouterr()
    assert _verify(out / "seal.esl", ca_dir, "--unit", OTHER_UNIT) == 1
    assert "SEAL_WRONG_UNIT" in capsys.readouterr().err

    data = bytearray((out / "seal.esl").read_bytes())
    data[len(data) // 2] ^= 0xFF  # inside the picture
    (tmp_path / "bad.esl").write_bytes(bytes(data))
    assert _verify(tmp_path / "bad.esl", ca_dir, "--json") == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "SEAL_BAD_SIGNATURE"

    (tmp_path / "cut.esl").write_bytes(bytes(data[:1000]))
    assert _verify(tmp_path / "cut.esl", ca_dir) == 2
    assert "SEAL_MALFORMED" in capsys.readouterr().err


def test_revoked_seal_fails_with_the_ca_crl(ca_dir, tmp_path, capsys):
    out = tmp_path / "seal"
    assert _issue(ca_dir, out) == 0
    crl = tmp_path / "ca.crl"
    assert main(["pki", "crl", "--ca", str(ca_dir), "--out", str(crl)]) == 0
    assert _verify(out / "seal.esl", ca_dir, "--crl", crl, "--json") == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1])["revocation_checked"] is True
    assert main(["pki", "revoke", "--ca", str(ca_dir), str(out / "seal.esl"), "--reason", "keyCompromise"]) == 0
    assert main(["pki", "crl", "--ca", str(ca_dir), "--out", str(crl)]) == 0
    capsys.readouterr()
    assert _verify(out / "seal.esl", ca_dir, "--crl", crl) == 1
    assert "SEAL_REVOKED" in capsys.readouterr().err


def test_issue_with_own_png_and_separate_key_passphrase(ca_dir, tmp_path):
    img = Image.new("RGBA", (300, 300), (0, 0, 0, 0))
    img.paste((200, 0, 0, 255), (50, 50, 250, 250))
    buf = io.BytesIO()
    img.save(buf, format="PNG")
    (tmp_path / "own.png").write_bytes(buf.getvalue())
    (tmp_path / "keypass").write_text("a different passphrase\n")
    out = tmp_path / "seal"
    assert _issue(ca_dir, out, "--image", tmp_path / "own.png", "--size-mm", 40,
                  "--key-passphrase-file", tmp_path / "keypass") == 0
    seal = parse_seal((out / "seal.esl").read_bytes())
    assert seal.picture.data == buf.getvalue() and seal.picture.width_mm == 40
    assert run_openssl("pkey", "-in", out / "seal.key", "-passin", "pass:a different passphrase",
                       "-noout").returncode == 0
    assert run_openssl("pkey", "-in", out / "seal.key", "-passin", f"pass:{PASSPHRASE_TEXT}",
                       "-noout", check=False).returncode != 0


def test_issue_refuses_bad_input(ca_dir, tmp_path, capsys):
    issued_before = len(list((ca_dir / "issued").glob("*.pem")))
    (tmp_path / "fake.png").write_bytes(b"GIF89a definitely not a png")
    assert _issue(ca_dir, tmp_path / "s1", "--image", tmp_path / "fake.png") == 2
    assert "SEAL_PICTURE_INVALID" in capsys.readouterr().err
    assert main(["pki", "issue-seal", "--ca", str(ca_dir), "--unit", "91350100M000100Y44", "--name", "某局",
                 "--out", str(tmp_path / "s2")]) == 2
    assert "PKI_INVALID_UNIT_CODE" in capsys.readouterr().err
    assert not (tmp_path / "s1").exists() and not (tmp_path / "s2").exists()
    assert len(list((ca_dir / "issued").glob("*.pem"))) == issued_before  # no certificate issued in vain


def test_show_describes_a_seal_with_chinese_intact(ca_dir, tmp_path, capsys):
    assert _issue(ca_dir, tmp_path / "seal") == 0
    capsys.readouterr()
    assert main(["pki", "show", str(tmp_path / "seal" / "seal.esl"), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["type"] == "seal" and info["name"] == UNIT_NAME and info["seal_type_name"] == "单位印章"


def test_a_seal_made_under_an_intermediate_verifies_with_its_chain(ca_dir, tmp_path, capsys):
    sub = tmp_path / "sub"
    assert main(["pki", "issue-intermediate", "--ca", str(ca_dir), "--dir", str(sub), "--name", "兰山区CA"]) == 0
    out = tmp_path / "seal"
    assert _issue(sub, out) == 0
    capsys.readouterr()
    # The SESeal carries its maker's certificate alone: with the root only, the maker cannot be placed.
    assert _verify(out / "seal.esl", ca_dir, "--json") != 0
    assert "SEAL_MAKER_UNTRUSTED" in capsys.readouterr().out
    assert _verify(out / "seal.esl", ca_dir, "--chain", sub / "chain.pem", "--unit", UNIT) == 0
    assert "seal OK" in capsys.readouterr().out
