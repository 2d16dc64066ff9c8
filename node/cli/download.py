"""``gwx download ID --out DIR``: a received (or sent) document's files, for reading and filing.

The node serves the sealed package (ZIP); this command streams it to a temporary file in DIR
(block by block, never whole in memory), opens it with the package reader — the same defences
the node applies to packages from peers: member names, sizes, zip bombs, and each file's SHA-256
against the signed manifest — and writes, each through a ``.part`` file renamed only when its
digest has been checked::

    DIR/body.pdf             正文 (with its seal), or DIR/body.ofd for an OFD 正文 (its seal inside)
    DIR/attachments/NAME     附件, under the names the sender gave them
    DIR/metadata.json        the document's META.json
    DIR/package.zip          the sealed package itself, for the archive (归档)

DIR is created if needed and must not already hold these files, so nothing is overwritten.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from exchange_protocol.manifest import ATTACHMENTS_DIR, BODY_NAMES, METADATA_NAME
from exchange_protocol.package_reader import PackageReader
from node.cli.api_client import BadInput
from node.cli.clerk import add_common_options, api_path, client_for, emit_json

PACKAGE_NAME = "package.zip"
DESCRIPTION = """save a document's 正文, 附件 and metadata to a directory, streamed and checked against
the signed manifest:
  DIR/body.pdf            正文 (with its seal; body.ofd for an OFD 正文)
  DIR/attachments/NAME    附件
  DIR/metadata.json       the document's META.json
  DIR/package.zip         the sealed package itself, for the archive (归档)
DIR is created if needed; files already there are never overwritten."""


def register(sub: argparse._SubParsersAction) -> None:
    help_text = "save a document's 正文, 附件 and metadata to a directory"
    p = sub.add_parser("download", help=help_text, description=DESCRIPTION)
    add_common_options(p)
    p.add_argument("doc_id", metavar="ID", help="the document's 公文标识, as inbox/outbox list it")
    p.add_argument("--out", required=True, type=Path, metavar="DIR", help="where to write the files")
    p.set_defaults(func=_download)


def _download(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and not out.is_dir():
        raise BadInput(f"--out {out} is a file, expected a directory (one is created if missing)",
                       path=str(out))
    created = [p for p in (out, *out.parents) if not p.exists()]  # removed again if nothing is saved
    out.mkdir(parents=True, exist_ok=True)
    taken = [name for name in (*BODY_NAMES, METADATA_NAME, PACKAGE_NAME, "attachments") if (out / name).exists()]
    if taken:
        raise BadInput(f"{out} already holds {', '.join(taken)}; choose an empty directory", path=str(out))
    partial = out / (PACKAGE_NAME + ".part")
    written: list[Path] = []
    try:
        with partial.open("wb") as f:
            client_for(args).download(api_path("inbox", args.doc_id, "package"), f)
            f.flush()
            os.fsync(f.fileno())
        with partial.open("rb") as f, PackageReader(f) as reader:
            for entry in reader.manifest.entries:
                if entry.path not in (*BODY_NAMES, METADATA_NAME) and not entry.path.startswith(ATTACHMENTS_DIR):
                    continue  # the seal and signature stay in package.zip, where they mean something
                target = out / entry.path  # names were checked by the reader: no separators, no ..
                target.parent.mkdir(exist_ok=True)
                _save(reader.iter_member(entry.path), target)
                written.append(target)
        partial.rename(out / PACKAGE_NAME)
    except BaseException:
        partial.unlink(missing_ok=True)
        for path in written:
            path.unlink(missing_ok=True)
        if (out / "attachments").is_dir() and not any((out / "attachments").iterdir()):
            (out / "attachments").rmdir()
        for directory in created:  # innermost first: an unknown id leaves no empty directory behind
            if directory.is_dir() and not any(directory.iterdir()):
                directory.rmdir()
        raise
    files = [p.relative_to(out).as_posix() for p in written] + [PACKAGE_NAME]
    if args.json:
        return emit_json({"doc_id": args.doc_id, "directory": str(out), "files": files})
    print(f"已保存 {args.doc_id} → {out}")
    for name in files:
        label = "正文" if name in BODY_NAMES else "附件" if name.startswith(ATTACHMENTS_DIR) else \
            "元数据" if name == METADATA_NAME else "封装包"
        print(f"  {label}  {name}  {(out / name).stat().st_size} 字节")
    return 0


def _save(chunks, target: Path) -> None:
    part = target.with_name(target.name + ".part")
    try:
        with part.open("wb") as f:
            for chunk in chunks:  # the last step checks size and SHA-256 against the manifest
                f.write(chunk)
        part.rename(target)
    finally:
        part.unlink(missing_ok=True)
