"""A small synchronous client of the node's local API for the clerks' commands (stdlib only).

Uploads are streamed: :class:`MultipartStream` is a file-like object that yields the multipart
body piece by piece — part headers, then each file read in blocks — with its total length known
in advance, so a 1 GiB attachment is sent with a Content-Length and never held in memory. A
progress callback sees the bytes sent. Errors from the API (``{"error": {...}}``) become
:class:`RemoteError` carrying the server's code and the kind behind its HTTP status, so the CLI
prints ``gwx: CODE: message`` and exits by the same table as for local errors.
"""

from __future__ import annotations

import http.client
import json
import os
import secrets
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

from node.error_kinds import kind_for_status, kind_of_code
from pki.errors import ErrorKind, GwxError

DEFAULT_NODE = "http://127.0.0.1:7080"
BLOCK = 256 * 1024


class RemoteError(GwxError):
    """An error reported by the node (its code and message) or on the way to it.

    Its kind is the node's: the node chose the HTTP status from the error's kind, so the status
    gives it back (:func:`node.error_kinds.kind_for_status`); without a status, the code's own."""

    code = "CLI_REMOTE_ERROR"
    kind = ErrorKind.INTERNAL  # replaced per error by the kind the node reported

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None,
                 **details: Any) -> None:
        super().__init__(message, code=code, **details)
        self.status = status
        if status is not None:
            self.kind = kind_for_status(status)
        elif code is not None and code != type(self).code:
            self.kind = kind_of_code(code) or self.kind


class BadInput(RemoteError):
    """A clerk's command given something it cannot send (a --node URL, a file that is not one)."""

    code = "CLI_BAD_INPUT"
    kind = ErrorKind.INVALID_INPUT


class NodeUnreachable(RemoteError):
    code = "CLI_NODE_UNREACHABLE"
    kind = ErrorKind.TRANSIENT


class BadResponse(RemoteError):
    """The node answered with something that is not its JSON (a proxy's page, a truncated body)."""

    code = "CLI_BAD_RESPONSE"
    kind = ErrorKind.INTERNAL


class MultipartStream:
    """multipart/form-data as a readable stream of known length (``len()``), for http.client."""

    def __init__(self, fields: list[tuple[str, bytes, str]], files: list[tuple[str, Path, str, str]],
                 progress: Callable[[int, int], None] | None = None) -> None:
        self.boundary = "gwx-" + secrets.token_hex(16)
        pieces: list[bytes | Path] = []
        for name, data, media_type in fields:
            pieces += [self._head(name, None, media_type), data, b"\r\n"]
        for name, path, filename, media_type in files:
            pieces += [self._head(name, filename, media_type), path, b"\r\n"]
        pieces.append(f"--{self.boundary}--\r\n".encode())
        self._pieces = pieces
        self._length = sum(p.stat().st_size if isinstance(p, Path) else len(p) for p in pieces)
        self._index = 0
        self._file: BinaryIO | None = None
        self._offset = 0  # within a bytes piece
        self.sent = 0
        self._progress = progress

    @property
    def content_type(self) -> str:
        return f"multipart/form-data; boundary={self.boundary}"

    def __len__(self) -> int:
        return self._length

    def _head(self, name: str, filename: str | None, media_type: str) -> bytes:
        disposition = f'form-data; name="{name}"'
        if filename is not None:
            # RFC 7578 §4.2: a plain ASCII fallback plus the exact UTF-8 name in filename*.
            fallback = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
            disposition += f"; filename=\"{fallback}\"; filename*=UTF-8''{urllib.parse.quote(filename, safe='')}"
        return (f"--{self.boundary}\r\nContent-Disposition: {disposition}\r\n"
                f"Content-Type: {media_type}\r\n\r\n").encode()

    def read(self, size: int = -1) -> bytes:
        size = BLOCK if size is None or size < 0 else size
        while self._index < len(self._pieces):
            piece = self._pieces[self._index]
            if isinstance(piece, Path):
                if self._file is None:
                    self._file = piece.open("rb")
                data = self._file.read(size)
                if data:
                    return self._count(data)
                self._file.close()
                self._file = None
            else:
                data = piece[self._offset:self._offset + size]
                if data:
                    self._offset += len(data)
                    return self._count(data)
                self._offset = 0
            self._index += 1
        return b""

    def _count(self, data: bytes) -> bytes:
        self.sent += len(data)
        if self._progress:
            self._progress(self.sent, self._length)
        return data

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


class ApiClient:
    def __init__(self, base_url: str, token: str | None, timeout: float = 300.0) -> None:
        parts = urllib.parse.urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BadInput(f"--node must be http://HOST:PORT or https://HOST:PORT, not {base_url!r}")
        self.parts = parts
        self.token = token
        self.timeout = timeout

    def _connection(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.parts.scheme == "https" else http.client.HTTPConnection
        return cls(self.parts.hostname, self.parts.port, timeout=self.timeout, blocksize=BLOCK)

    def request(self, method: str, path: str, *, query: dict[str, Any] | None = None, body: Any = None,
                content_type: str | None = None, length: int | None = None) -> tuple[int, str, bytes]:
        target = self.parts.path.rstrip("/") + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        headers = self._headers()
        if content_type:
            headers["Content-Type"] = content_type
        if length is not None:
            headers["Content-Length"] = str(length)
        conn = self._connection()
        try:
            try:
                conn.request(method, target, body=body, headers=headers)
            except (BrokenPipeError, ConnectionResetError) as exc:
                # The node may refuse an upload (413) before reading all of it and close the
                # connection; its answer is usually waiting to be read — unless http.client has
                # already dropped the socket (the node went away), and then there is no answer.
                if conn.sock is None:
                    raise NodeUnreachable(f"the node at {self.parts.geturl()} closed the connection: {exc}") from None
            response = conn.getresponse()
            return response.status, response.getheader("Content-Type", ""), response.read()
        except (OSError, http.client.HTTPException) as exc:
            raise NodeUnreachable(f"cannot reach the node at {self.parts.geturl()}: {exc}") from None
        finally:
            conn.close()

    def download(self, path: str, out: BinaryIO, *, query: dict[str, Any] | None = None,
                 accept: str = "application/zip",
                 progress: Callable[[int, http.client.HTTPResponse], None] | None = None,
                 post_json: dict[str, Any] | None = None) -> int:
        """GET ``path`` (POST ``post_json`` to it, when given) into ``out`` block by block (never whole in
        memory); returns the bytes written.
        ``progress`` sees the bytes written so far and the response (its headers) after each block.

        An error answer (small JSON) is read whole and raised as :class:`RemoteError`, and so is an
        answer cut short (fewer bytes than its Content-Length, or a chunked body without its last
        chunk); an error writing ``out`` (a full disk) is the caller's and propagates as it is."""
        conn = self._connection()
        unreachable = (OSError, http.client.HTTPException)
        target = self.parts.path.rstrip("/") + path
        if query:
            target += "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        try:
            try:
                if post_json is None:
                    conn.request("GET", target, headers=self._headers(accept))
                else:
                    conn.request("POST", target, body=json.dumps(post_json, ensure_ascii=False).encode("utf-8"),
                                 headers={**self._headers(accept), "Content-Type": "application/json"})
                response = conn.getresponse()
                if response.status >= 400:
                    return self._value(response.status, response.getheader("Content-Type", ""), response.read())
                block = response.read(BLOCK)
            except unreachable as exc:
                raise self._unreachable(exc) from None
            written = 0
            while block:
                out.write(block)
                written += len(block)
                if progress:
                    progress(written, response)
                try:
                    block = response.read(BLOCK)
                except unreachable as exc:
                    raise self._unreachable(exc) from None
            # http.client's read(amt) returns b"" when the connection closes before Content-Length
            # bytes came (a chunked body cut short raises IncompleteRead above): a node that stopped
            # mid-answer must not leave a truncated file that looks whole.
            promised = response.getheader("Content-Length")
            if promised is not None and promised.isdigit() and written != int(promised):
                raise self._unreachable(http.client.IncompleteRead(b"", int(promised) - written))
            return written
        finally:
            conn.close()

    def _unreachable(self, exc: BaseException) -> RemoteError:
        return RemoteError(f"cannot reach the node at {self.parts.geturl()}: {exc}", code="CLI_NODE_UNREACHABLE")

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        headers = {"Accept": accept, "User-Agent": "gwx-cli"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        status, content_type, data = self.request(method, path, **kwargs)
        return self._value(status, content_type, data)

    def _value(self, status: int, content_type: str, data: bytes) -> Any:
        if not content_type.startswith("application/json"):
            if status >= 400:
                raise RemoteError(f"the node answered {status} {data[:200].decode('utf-8', 'replace')}",
                                  code=f"HTTP_{status}", status=status)
            return data
        try:
            value = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise BadResponse(f"the node answered {status} with malformed JSON", status=status) from None
        if status >= 400:
            error = value.get("error") if isinstance(value, dict) else None
            if not isinstance(error, dict) or not isinstance(error.get("code"), str):
                raise RemoteError(f"the node answered {status}", code=f"HTTP_{status}", status=status)
            details = error.get("details") if isinstance(error.get("details"), dict) else {}
            message = str(error.get("message", ""))
            if error["code"] == "API_UNAUTHENTICATED" and not self.token:
                message += (" — no token was given: set $GWX_TOKEN to your API token, or read it from a file "
                            "with --token-file FILE (gwx node init leaves one per unit and an operator's in "
                            "NODE_DIR/tokens/; gwx node add-token makes more)")
            elif error["code"] == "API_UNAUTHENTICATED" and self._token_looks_like_a_path():
                message += (f" — the token given looks like a file name ({self.token!r}): $GWX_TOKEN holds "
                            "the token itself; to read it from a file, use --token-file FILE")
            raise RemoteError(message, code=error["code"], status=status, **details)
        return value

    def _token_looks_like_a_path(self) -> bool:
        # Tokens are URL-safe base64 (no "/"); a path is the usual mix-up with --token-file.
        return bool(self.token) and ("/" in self.token or os.path.exists(self.token))

    def get(self, path: str, query: dict[str, Any] | None = None) -> Any:
        return self.call("GET", path, query=query)

    def post(self, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body or {}, ensure_ascii=False).encode()
        return self.call("POST", path, body=data, content_type="application/json", length=len(data))

    def post_multipart(self, path: str, stream: MultipartStream) -> Any:
        try:
            return self.call("POST", path, body=stream, content_type=stream.content_type, length=len(stream))
        finally:
            stream.close()


def read_token(token_file: str | None) -> str | None:
    if token_file:
        try:
            return Path(token_file).read_text("utf-8").strip()
        except OSError as exc:
            raise BadInput(f"cannot read the token file {token_file}: {exc.strerror}") from None
    return os.environ.get("GWX_TOKEN") or None
