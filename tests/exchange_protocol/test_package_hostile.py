# ruff: noqa: F811  (pytest fixtures imported from package_fixtures are redefined as parameters)
"""The defensive reader against a generated corpus of hostile packages: each a typed error, never a crash."""

from __future__ import annotations

import dataclasses
import io
import zipfile

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exchange_protocol.errors import PackageError, PackageZipBomb
from exchange_protocol.package import Attachment, build_package
from exchange_protocol.package_reader import DEFAULT_LIMITS, PackageReader
from exchange_protocol.package_verify import CHECKS, verify_package
from node.localnet import notice_pdf
from tests.exchange_protocol.hostile.corpus import Case, build_corpus
from tests.exchange_protocol.ofd_fixtures import needing_zip_version
from tests.exchange_protocol.package_fixtures import NOW, make_meta, pki_env  # noqa: F401


@pytest.fixture(scope="module")
def valid_package(pki_env) -> bytes:
    out = io.BytesIO()
    build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=pki_env.seal, at=NOW,
                  attachments=[Attachment("附件1 名单.csv", "姓名\n张三\n".encode())])
    return out.getvalue()


@pytest.fixture(scope="module")
def corpus(valid_package, pki_env) -> list[Case]:
    return build_corpus(valid_package, pki_env.seal.signer, NOW)


def test_the_valid_package_passes(valid_package, pki_env):
    assert verify_package(io.BytesIO(valid_package), [pki_env.root], NOW).ok


def test_corpus_covers_every_defence(corpus):
    codes = {c.code for c in corpus}
    assert codes >= {
        "PKG_MALFORMED", "PKG_PATH_TRAVERSAL", "PKG_ABSOLUTE_PATH", "PKG_BAD_PATH", "PKG_DUPLICATE_NAME",
        "PKG_NAME_NOT_UTF8", "PKG_SYMLINK", "PKG_ENCRYPTED_MEMBER", "PKG_UNSUPPORTED_COMPRESSION",
        "PKG_ZIP_BOMB", "PKG_TOO_MANY_MEMBERS", "PKG_MEMBER_TOO_LARGE", "PKG_TOO_LARGE",
        "PKG_OVERLAPPING_MEMBERS", "PKG_MISSING_METADATA", "PKG_MISSING_BODY", "PKG_MISSING_SIGNATURE",
        "PKG_MISSING_MANIFEST", "PKG_MISSING_SEAL", "PKG_UNLISTED_FILE", "PKG_MISSING_FILE",
        "PKG_BAD_MANIFEST", "PKG_DIGEST_MISMATCH", "PKG_SIZE_MISMATCH", "PKG_NESTED_ARCHIVE"}


def test_each_hostile_package_fails_its_check_with_its_code(corpus, pki_env):
    wrong = []
    for case in corpus:
        report = verify_package(io.BytesIO(case.data), [pki_env.root], NOW, limits=case.limits or DEFAULT_LIMITS)
        check = report.check(case.check)
        if report.ok or check.status != "fail" or check.code != case.code:
            wrong.append((case.name, case.check, case.code, [(c.name, c.status, c.code) for c in report.checks]))
        # Checks before the failing one passed; nothing that depends on a structural failure ran.
        if case.check == "structure":
            assert all(c.status == "skipped" for c in report.checks[1:]), case.name
    assert not wrong, wrong


def test_structural_defences_raise_typed_errors_from_the_reader(corpus):
    for case in (c for c in corpus if c.check == "structure"):
        with pytest.raises(PackageError) as info:
            PackageReader(io.BytesIO(case.data), case.limits or DEFAULT_LIMITS)
        assert info.value.code == case.code, case.name


def test_limits_are_enforced_on_the_bytes_that_come_out_not_only_on_headers(pki_env):
    out = io.BytesIO()
    build_package(out, metadata=make_meta(), body=notice_pdf(), seal_key=pki_env.seal, at=NOW,
                  attachments=[Attachment("报表.csv", b"1,2,3,4,5,6,7,8\n" * 200_000)])
    reader = PackageReader(io.BytesIO(out.getvalue()))  # passes with the default limits
    # Tighter limits after the header check: streaming must stop the member on its own.
    reader.limits = dataclasses.replace(DEFAULT_LIMITS, max_ratio=5, ratio_floor_bytes=1024 * 1024)
    seen = 0
    with pytest.raises(PackageZipBomb):
        for chunk in reader.iter_member("attachments/报表.csv"):
            seen += len(chunk)
    assert seen < 3_200_000  # stopped before the end


def _members(package: bytes) -> dict[str, bytes]:
    """Every member's content as the reader delivers it, plus the manifest, signature and time stamp."""
    with PackageReader(io.BytesIO(package)) as reader:
        files = {e.path: b"".join(reader.iter_member(e.path)) for e in reader.manifest.entries}
        return {**files, "<manifest>": reader.manifest_bytes, "<signature>": reader.signature,
                "<timestamp>": reader.timestamp or b"",
                "<names>": "\n".join(sorted(zipfile.ZipFile(io.BytesIO(package)).namelist())).encode()}


_ORIGINAL_FIELDS = ("document_id", "title", "issuers", "seal_name", "seal_unit", "signer", "signing_time",
                    "timestamp_time", "attachments")


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_random_damage_is_refused_or_changes_nothing_that_was_signed(valid_package, pki_env, data):
    """Damage to the ZIP's unsigned bookkeeping (timestamps, extra fields, comments) may leave a
    package that still verifies; then every member it delivers is byte for byte the original's and
    the report says what it said for the original. Any other damage fails a check with a code."""
    damaged = bytearray(valid_package)
    for _ in range(data.draw(st.integers(1, 8))):
        pos = data.draw(st.integers(0, len(damaged) - 1))
        damaged[pos] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        damaged = damaged[: data.draw(st.integers(0, len(damaged)))]
    report = verify_package(io.BytesIO(bytes(damaged)), [pki_env.root], NOW)
    assert [c.name for c in report.checks] == list(CHECKS)
    for c in report.checks:
        assert c.status in ("pass", "fail", "skipped", "absent")
        assert c.status != "fail" or (c.code and c.code.isupper())
    if report.ok:
        assert _members(bytes(damaged)) == _members(valid_package)
        original = verify_package(io.BytesIO(valid_package), [pki_env.root], NOW)
        assert {f: getattr(report, f) for f in _ORIGINAL_FIELDS} == {f: getattr(original, f) for f in _ORIGINAL_FIELDS}


def test_damage_to_a_members_data_is_refused_unless_it_decodes_to_the_same_bytes(valid_package, pki_env):
    """Every member is covered by the manifest's digests, the manifest by the signature. A changed
    byte of a stored member's data is a changed byte of content: refused. In deflated data a bit can
    change nothing that comes out (the final-block flag of a stream that ends there anyway); then the
    package must deliver exactly the original bytes."""
    original = _members(valid_package)
    stored = 0
    for info in zipfile.ZipFile(io.BytesIO(valid_package)).infolist():
        start = info.header_offset + 30 + len(info.orig_filename.encode()) + len(info.extra)
        for pos in (start, start + info.compress_size // 2, start + info.compress_size - 1):
            damaged = bytearray(valid_package)
            damaged[pos] ^= 0x01
            report = verify_package(io.BytesIO(bytes(damaged)), [pki_env.root], NOW)
            if info.compress_type == zipfile.ZIP_STORED:
                stored += 1
                assert not report.ok, (info.filename, pos)
            if not report.ok:
                assert any(c.status == "fail" and c.code for c in report.checks), (info.filename, pos)
            else:
                assert _members(bytes(damaged)) == original, (info.filename, pos)
    assert stored >= 3  # body.pdf is stored: at least one member's content was damaged directly


def test_a_zip_version_zipfile_cannot_read_is_a_malformed_package(valid_package, pki_env):
    """A directory entry needing ZIP version 6.4: zipfile raises NotImplementedError on opening; the
    reader says PKG_MALFORMED like any other unreadable ZIP (found by the OFD fuzz test in CI)."""
    changed = needing_zip_version(valid_package)
    report = verify_package(io.BytesIO(changed), [pki_env.root], NOW)
    assert not report.ok
    assert (report.check("structure").status, report.check("structure").code) == ("fail", "PKG_MALFORMED")
