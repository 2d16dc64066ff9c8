"""Whether a drop is the document already sent under its 公文标识: one content digest, two ways.

A drop's key (its 公文标识) can be found sent when the drop itself was not, or not by it: a clerk
sent a document under the same id through the local API (or SOAP) after the drop was claimed and
keyed, and before it was submitted. Writing the drop's result then would tell the OA its drop was
sent when another document went out. So before a drop is *adopted* (its result written for what the
store holds under its key), the drop's digest must equal the sent document's:

* :func:`drop_digest` — over the drop as it would be sent: its metadata as the package would carry
  it (META.json parsed, the key as ``id``, canonical JSON), the SHA-256 of ``body.pdf`` and of each
  attachment under its member name;
* :func:`sent_digest` — over the sealed package: its ``metadata.json``, the SHA-256 of the sealed
  body's first ``len(body.pdf)`` bytes (sealing appends one incremental PAdES update and leaves what
  came before it byte for byte) and how many revisions (``%%EOF``) follow them — one, the seal's; more
  means the sent body went on past the drop's (the drop is an earlier revision of it) —, and the
  manifest's attachment digests, in the manifest's order (the drop's: by name, as it is sent).

Equal digests: the same document (the node was killed after submitting, or the OA's document was
also sent by hand) — adopted, idempotently. Different: ``DROP_ID_TAKEN`` (:mod:`adapters.folder.errors`).
Blocking (files are hashed): run in a thread.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from adapters.folder.drop import DropContents
from exchange_protocol.manifest import BODY_NAME, METADATA_NAME, attachment_member
from exchange_protocol.meta_json import meta_to_json, parse_meta
from exchange_protocol.package_reader import PackageReader

CHUNK = 1 << 20
EOF_MARKER = b"%%EOF"
SEAL_REVISIONS = 1  # the revisions sealing appends to a body


def drop_digest(contents: DropContents, doc_id: str) -> str:
    metadata = meta_to_json(parse_meta({**contents.meta, "id": doc_id}).metadata)
    with open(contents.body, "rb") as body:
        body_sha = _sha256(iter(lambda: body.read(CHUNK), b""))
    body_fact = f"{body_sha}+{SEAL_REVISIONS}"
    attachments = []
    for name, path in contents.attachments:
        with open(path, "rb") as f:
            attachments.append((attachment_member(name), _sha256(iter(lambda f=f: f.read(CHUNK), b""))))
    return _digest(metadata, body_fact, attachments)


def sent_digest(package: Path, body_size: int) -> str:
    """The digest of the document sealed in ``package``, its body taken to ``body_size`` bytes (the
    drop's body's size: what the OA's body would be inside the sealed one)."""
    with open(package, "rb") as f, PackageReader(f) as reader:
        metadata = reader.read_member(METADATA_NAME)
        head, revisions = hashlib.sha256(), 0
        tail = b""  # the last bytes after the drop's length, so a marker split across chunks is seen
        offset = 0
        for chunk in reader.iter_member(BODY_NAME):
            inside = max(0, min(len(chunk), body_size - offset))
            head.update(chunk[:inside])
            rest = tail + chunk[inside:]
            revisions += rest.count(EOF_MARKER)  # tail is shorter than a marker: nothing counted twice
            tail = rest[-(len(EOF_MARKER) - 1):]
            offset += len(chunk)
        body_fact = f"{head.hexdigest() if offset >= body_size else 'shorter'}+{revisions}"
        attachments = [(entry.path, entry.digest) for entry in reader.attachments]
    return _digest(metadata, body_fact, attachments)


def _digest(metadata: bytes, body_fact: str, attachments: list[tuple[str, str]]) -> str:
    # In their order: 附件1, 附件2 … are numbered by it, so the same files in another order are another document.
    facts = {"metadata": hashlib.sha256(metadata).hexdigest(), "body": body_fact,
             "attachments": [list(a) for a in attachments]}
    return hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()


def _sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()
