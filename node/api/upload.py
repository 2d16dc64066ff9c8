"""Receiving a document submission: a multipart/form-data request streamed part by part to disk.

A submission can carry a body PDF of tens of MiB and attachments up to the size of an envelope, so
nothing but the small ``meta`` part is held in memory: each file part is written in chunks to its
own temp file (0600) in the node's upload directory while the request is still arriving. Caps are
checked as bytes arrive — the announced Content-Length first, then the body part, each attachment
and the running total — and the first cap crossed ends the request with 413 ``API_TOO_LARGE``; the
temp files written so far are removed on every failure. The caller removes them after the service
has taken what it needs (the service streams from them into its blob store).

Parts: ``meta`` (JSON object, META.json), ``body`` (application/pdf or application/ofd, exactly one;
its bytes decide which it is), ``attachment``
(0..n, each named by the part's filename, one safe file name; see
:func:`exchange_protocol.manifest.attachment_member`). Anything else is a typed 400.
"""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError

from exchange_protocol.canonical import load_json
from exchange_protocol.errors import PackageError
from exchange_protocol.manifest import attachment_member, name_key
from node.errors import ApiError, BadJson
from pki.errors import ErrorKind

BODY_MEDIA_TYPES = ("application/pdf", "application/ofd")  # the bytes decide (exchange_protocol.package)

CHUNK = 256 * 1024
WRITE_BATCH = 1024 * 1024
MAX_ATTACHMENTS = 1000
_ABSOLUTE_FILENAME = re.compile(r';\s*filename\s*=\s*"([\\/](?:[^"\\]|\\.)*)"', re.IGNORECASE)


class TooLarge(ApiError):
    code = "API_TOO_LARGE"
    kind = ErrorKind.INVALID_INPUT


@dataclass(frozen=True)
class UploadLimits:
    total: int
    body: int
    attachment: int
    meta: int


@dataclass
class Submission:
    meta: dict[str, Any] | None = None
    body: Path | None = None
    attachments: list[tuple[str, Path]] = field(default_factory=list)
    _files: list[Path] = field(default_factory=list)

    def cleanup(self) -> None:
        for path in self._files:
            try:
                path.unlink()
            except FileNotFoundError:
                pass


async def receive_submission(request: web.Request, directory: Path, limits: UploadLimits) -> Submission:
    """Read the whole multipart request into a :class:`Submission`, or raise a typed error."""
    if request.content_type != "multipart/form-data":
        raise ApiError(f"a submission is multipart/form-data (parts meta, body, attachment), "
                       f"not {request.content_type or 'an empty body'}", code="API_BAD_MULTIPART")
    announced = request.content_length
    if announced is not None and announced > limits.total:
        raise TooLarge(f"the submission is {announced} bytes, more than the {limits.total} allowed",
                       size=announced, limit=limits.total)
    try:
        reader = await request.multipart()
    except (ValueError, AssertionError, KeyError) as exc:
        raise ApiError(f"malformed multipart request: {exc}", code="API_BAD_MULTIPART") from None
    submission = Submission()
    try:
        await _read_parts(reader, submission, directory, limits)
    except BaseException:
        submission.cleanup()
        raise
    return submission


async def _read_parts(reader, submission: Submission, directory: Path, limits: UploadLimits) -> None:
    total = 0
    seen_names: set[str] = set()
    while True:
        try:
            part = await reader.next()
        except (ValueError, AssertionError, KeyError, UnicodeDecodeError, HttpProcessingError) as exc:
            raise ApiError(f"malformed multipart request: {_one_line(exc)}", code="API_BAD_MULTIPART") from None
        if part is None:
            break
        if not isinstance(part, BodyPartReader):
            raise ApiError("nested multipart parts are not accepted", code="API_BAD_MULTIPART")
        name = part.name
        if name == "meta":
            if submission.meta is not None:
                raise ApiError("more than one meta part", code="API_BAD_MULTIPART", part="meta")
            data = await _read_small(part, limits.meta)
            total += len(data)
            meta = load_json(data, max_bytes=limits.meta, what="the meta part (META.json)", error=BadJson)
            if not isinstance(meta, dict):
                raise BadJson("the meta part must be a JSON object (META.json)")
            submission.meta = meta
        elif name == "body":
            if submission.body is not None:
                raise ApiError("more than one body part", code="API_BAD_MULTIPART", part="body")
            media_type = (part.headers.get("Content-Type") or "").split(";")[0].strip().lower()
            if media_type not in BODY_MEDIA_TYPES:
                raise ApiError(f"the body part must be application/pdf or application/ofd, not "
                               f"{media_type or 'untyped'}",
                               code="API_BAD_MULTIPART", part="body")
            path, size = await _stream_to_file(part, directory, submission, limits.body, total, limits.total)
            total += size
            submission.body = path
        elif name == "attachment":
            display = _attachment_name(part.filename, part.headers.get("Content-Disposition", ""))
            if name_key(display) in seen_names:
                raise ApiError(f"two attachments are called {display!r}", code="API_BAD_FILENAME", name=display)
            if len(submission.attachments) >= MAX_ATTACHMENTS:
                raise ApiError(f"more than {MAX_ATTACHMENTS} attachments", code="API_BAD_MULTIPART")
            seen_names.add(name_key(display))
            path, size = await _stream_to_file(part, directory, submission, limits.attachment, total,
                                               limits.total)
            total += size
            submission.attachments.append((display, path))
        else:
            raise ApiError(f"unknown part {name!r}; a submission has parts meta, body and attachment",
                           code="API_BAD_MULTIPART", part=str(name))
    if submission.meta is None:
        raise ApiError("the meta part (META.json) is missing", code="API_BAD_MULTIPART", part="meta")
    if submission.body is None:
        raise ApiError("the body part (the PDF or OFD) is missing", code="API_BAD_MULTIPART", part="body")


def _attachment_name(filename: str | None, disposition: str) -> str:
    # aiohttp strips leading '/' and '\\' from a quoted filename; an absolute name is still refused.
    absolute = _ABSOLUTE_FILENAME.search(disposition)
    if absolute:
        raw = re.sub(r"\\(.)", r"\1", absolute.group(1))
        raise ApiError(f"attachment name {raw!r} is an absolute path; give a file name only",
                       code="API_BAD_FILENAME", name=raw)
    if not filename:
        raise ApiError("an attachment part needs a filename", code="API_BAD_FILENAME")
    if "/" in filename or "\\" in filename:
        raise ApiError(f"attachment name {filename!r} contains a path separator; give a file name only",
                       code="API_BAD_FILENAME", name=filename)
    try:
        attachment_member(filename)
    except PackageError as exc:
        raise ApiError(f"attachment name refused: {exc.message}", code="API_BAD_FILENAME",
                       name=filename) from None
    return filename


async def _read_small(part: BodyPartReader, cap: int) -> bytes:
    chunks: list[bytes] = []
    size = 0
    while chunk := await _chunk(part):
        size += len(chunk)
        if size > cap:
            raise TooLarge(f"the {part.name} part is more than {cap} bytes", part=str(part.name), limit=cap)
        chunks.append(chunk)
    return b"".join(chunks)


async def _stream_to_file(part: BodyPartReader, directory: Path, submission: Submission, cap: int,
                          total_before: int, total_cap: int) -> tuple[Path, int]:
    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=directory)
    path = Path(name)
    submission._files.append(path)
    size = 0
    pending: list[bytes] = []
    pending_size = 0
    with os.fdopen(fd, "wb") as out:
        while chunk := await _chunk(part):
            size += len(chunk)
            if size > cap:
                raise TooLarge(f"the {part.name} part is more than {cap} bytes", part=str(part.name),
                               limit=cap)
            if total_before + size > total_cap:
                raise TooLarge(f"the submission is more than {total_cap} bytes", limit=total_cap)
            pending.append(chunk)
            pending_size += len(chunk)
            if pending_size >= WRITE_BATCH:
                # Disk writes go to a thread so a slow disk never stalls other requests.
                await asyncio.to_thread(out.write, b"".join(pending))
                pending, pending_size = [], 0
        if pending:
            await asyncio.to_thread(out.write, b"".join(pending))
    return path, size


async def _chunk(part: BodyPartReader) -> bytes:
    try:
        return await part.read_chunk(CHUNK)
    except (ValueError, AssertionError, HttpProcessingError) as exc:
        raise ApiError(f"malformed multipart part: {_one_line(exc)}", code="API_BAD_MULTIPART") from None


def _one_line(exc: Exception) -> str:
    return " ".join(str(exc).split())[:200]


def clear_stale_uploads(directory: Path) -> int:
    """Remove temp files a previous run left behind (a crash mid-upload); returns how many."""
    removed = 0
    for path in directory.glob("upload-*.part"):
        try:
            path.unlink()
            removed += 1
        except FileNotFoundError:
            pass
    return removed
