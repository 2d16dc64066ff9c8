"""``gwx node backup`` / ``gwx node restore``: a node directory in one archive while the node runs,
and back into a new directory, here or on another machine (:mod:`node.ops.backup`)."""

from __future__ import annotations

import argparse
from pathlib import Path

from node.cli.passphrase import add_passphrase_option, get_passphrase


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("backup", help="back up a node directory, running node or not, into one archive",
                       description="Write one archive of the node: a consistent copy of its database and the "
                                   "blobs it refers to, its keys (encrypted as on disk), tokens, node.toml, CRLs "
                                   "and the files node.toml names, with a manifest of SHA-256 digests sealed by "
                                   "an HMAC from the node passphrase. The archive holds the API tokens in clear: "
                                   "it is written 0600; keep it where only the operator reads it.")
    p.add_argument("directory", type=Path, metavar="NODE_DIR", help="the node directory")
    p.add_argument("--to", required=True, type=Path, metavar="FILE",
                   help="the archive to write (a tar; one already there is replaced once the new one is whole)")
    add_passphrase_option(p)
    p.set_defaults(func=_backup)

    p = sub.add_parser("restore", help="restore a node backup into a new directory (checked before it is used)",
                       description="Unpack a gwx node backup into a new directory once every file matches the "
                                   "manifest and the manifest its HMAC (the node passphrase): a changed archive "
                                   "is refused with NODE_BACKUP_TAMPERED and nothing is written. Then run gwx "
                                   "node check on it and start it.")
    p.add_argument("archive", type=Path, metavar="FILE", help="the archive gwx node backup wrote")
    p.add_argument("--to", required=True, type=Path, metavar="NODE_DIR",
                   help="the directory to restore into (must not exist, or be empty)")
    add_passphrase_option(p)
    p.set_defaults(func=_restore)


def _backup(args: argparse.Namespace) -> int:
    from node.cli.exit_codes import FileProblem
    from node.ops.backup import backup

    folder = Path(args.to).absolute().parent
    if not folder.is_dir():  # said before the passphrase is asked for and the store is copied
        raise FileProblem(f"cannot write {args.to}: there is no directory {folder} (create it first)",
                          code="IO_ERROR", path=str(args.to))
    manifest = backup(args.directory, args.to, get_passphrase(args, what="node key"))
    files = manifest["files"]
    blobs = sum(1 for name in files if name.startswith("data/blobs/"))
    print(f"node '{manifest['node_id']}' backed up to {args.to}: {len(files)} files ({blobs} blobs), "
          f"{sum(f['size'] for f in files.values()) / 1024**2:.1f} MiB")
    return 0


def _restore(args: argparse.Namespace) -> int:
    from node.ops.backup import restore

    manifest = restore(args.archive, args.to, get_passphrase(args, what="node key"))
    print(f"node '{manifest['node_id']}' restored into {args.to} ({len(manifest['files'])} files, backed up "
          f"{manifest['created_at']}); check it with gwx node check --dir {args.to}")
    return 0
