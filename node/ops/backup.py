"""``gwx node backup`` / ``gwx node restore``: a node directory in one archive, taken while the node
runs, restorable into another directory on another machine.

What is in it (a tar, members under ``node/``): a consistent copy of the database
(:func:`node.store.opener.snapshot_store`) and every blob that copy refers to, then the rest of the
node directory as it is — node.toml, the keys (encrypted as on disk), the tokens, CRLs, the network
directory, the files node.toml names inside the directory. Left out: ``run/`` (the running node's
lock and ready file), logs, unreferenced blobs, uploads and archives being built.

``MANIFEST.json``, the last member, lists each member's size and SHA-256 and carries an HMAC-SHA256
over itself with a key drawn (scrypt) from the node passphrase: a restore checks every byte against
it, and one who changed a file and its digest without the passphrase is refused too
(``NODE_BACKUP_TAMPERED``). The archive holds the API tokens in clear: it is written 0600.

A restore unpacks into a new directory beside the target, checks everything, then renames it into
place: nothing is left half-restored. node.toml's paths are relative to the node directory; an
absolute one inside the directory the backup was taken from is made relative.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import io
import json
import os
import secrets
import shutil
import tarfile
import tempfile
from pathlib import Path

from node.config import CONFIG_NAME, load_config
from node.errors import NodeError
from node.store.opener import snapshot_store
from pki.errors import ErrorKind
from pki.keystore import fsync_dir, read_private_key

FORMAT = "gwx-node-backup/1"
MANIFEST = "MANIFEST.json"
ROOT = "node"
SKIPPED = {"run", "data"}  # data/ is the snapshot and its blobs
CHUNK = 1024 * 1024


class BackupTampered(NodeError):
    """The archive does not match its manifest, or the manifest not its HMAC (changed, cut short, or
    made with another passphrase)."""

    code = "NODE_BACKUP_TAMPERED"
    kind = ErrorKind.VERIFICATION_FAILED


class RestoreTargetExists(NodeError):
    code = "NODE_RESTORE_TARGET_EXISTS"
    kind = ErrorKind.CONFLICT


def _mac_key(passphrase: bytes, salt: bytes) -> bytes:
    return hashlib.scrypt(passphrase, salt=salt, n=2**14, r=8, p=1, dklen=32)


def _mac(manifest: dict, key: bytes) -> str:
    body = json.dumps({k: v for k, v in manifest.items() if k != "mac"}, sort_keys=True, ensure_ascii=False)
    return hmac.new(key, body.encode(), hashlib.sha256).hexdigest()


def _node_files(directory: Path) -> list[tuple[str, Path]]:
    files = []
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if relative.parts[0] in SKIPPED or path.suffix == ".log" or path.name == ".lock" \
                or "incoming" in relative.parts or not path.is_file() or path.is_symlink():
            continue
        files.append((str(relative), path))
    return files


def backup(directory: Path, out: Path, passphrase: bytes) -> dict:
    """Write the archive of node ``directory`` to ``out``; answer its manifest."""
    config = load_config(directory)
    read_private_key(config.credentials_dir / "sign.key", passphrase)  # a wrong passphrase: no useless backup
    salt = secrets.token_bytes(16)
    manifest = {"format": FORMAT, "node_id": config.node_id, "directory": str(config.directory),
                "created_at": dt.datetime.now(dt.UTC).isoformat(), "salt": salt.hex(), "files": {}}
    out = Path(out)
    partial = out.with_name(f".{out.name}.{secrets.token_hex(4)}.part")
    with tempfile.TemporaryDirectory(prefix="gwx-backup-") as scratch:
        members: list[tuple[str, Path]] = []
        if (config.data_dir / "gwx.db").exists():
            db_copy = Path(scratch) / "gwx.db"
            blobs = snapshot_store(config.data_dir, db_copy)
            members += [("data/gwx.db", db_copy)] + [(f"data/{name}", path) for name, path in blobs]
        members += _node_files(config.directory)
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w|") as tar:
                for name, path in members:
                    manifest["files"][name] = _add(tar, name, path)
                manifest["mac"] = _mac(manifest, _mac_key(passphrase, salt))
                text = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode = len(text), 0o600
                tar.addfile(info, io.BytesIO(text))
                raw.flush()
                os.fsync(raw.fileno())
            os.replace(partial, out)
            fsync_dir(out.parent)
        finally:
            partial.unlink(missing_ok=True)
    return manifest


class _Hashing(io.RawIOBase):
    """A file read through once, hashed on the way (a blob of up to 2 GiB is never held whole)."""

    def __init__(self, f) -> None:
        self.f, self.sha256 = f, hashlib.sha256()

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        data = self.f.read(n)
        self.sha256.update(data)
        return data


def _add(tar: tarfile.TarFile, name: str, path: Path) -> dict:
    info = tarfile.TarInfo(f"{ROOT}/{name}")
    st = path.stat()
    info.mode, info.mtime = st.st_mode & 0o777, int(st.st_mtime)
    if name.startswith("data/"):  # the database copy (ours alone) and blobs (never changed once written)
        with path.open("rb") as f:
            info.size, source = st.st_size, _Hashing(f)
            tar.addfile(info, source)
            return {"size": info.size, "sha256": source.sha256.hexdigest()}
    data = path.read_bytes()  # config, keys, CRLs: small, and replaced whole (renamed) when they change
    info.size = len(data)
    tar.addfile(info, io.BytesIO(data))
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def restore(archive: Path, target: Path, passphrase: bytes) -> dict:
    """Unpack ``archive`` into the new directory ``target`` once every byte checks; answer the manifest."""
    target = Path(target).absolute()
    if target.exists() and any(target.iterdir()):
        raise RestoreTargetExists(f"{target} exists and is not empty: restore into a new directory",
                                  path=str(target))
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.restore-", dir=target.parent))
    try:
        digests, manifest = {}, None
        try:
            with tarfile.open(archive, mode="r|") as tar:
                for info in tar:
                    if info.name == MANIFEST and info.isfile() and info.size < 64 * CHUNK:
                        manifest = json.loads(tar.extractfile(info).read())
                        continue
                    digests[_checked_name(info)] = _unpack(tar, info, staging)
        except (tarfile.TarError, EOFError, ValueError) as exc:
            raise BackupTampered(f"{archive} is not a whole gwx node backup: {exc}") from None
        _verify(manifest, digests, passphrase, archive)
        toml = staging / CONFIG_NAME
        old = manifest["directory"].rstrip("/") + "/"
        toml.write_text(toml.read_text("utf-8").replace(f'"{old}', '"'), "utf-8")
        for path in staging.rglob("*"):
            if path.is_dir():
                path.chmod(0o700)
        if target.exists():
            target.rmdir()
        staging.rename(target)
        fsync_dir(target.parent)
        load_config(target)  # the restored node.toml loads where it now is
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _checked_name(info: tarfile.TarInfo) -> str:
    parts = Path(info.name).parts
    if not info.isfile() or len(parts) < 2 or parts[0] != ROOT or ".." in parts or Path(info.name).is_absolute():
        raise BackupTampered(f"unexpected member {info.name!r} in the archive")
    return "/".join(parts[1:])


def _unpack(tar: tarfile.TarFile, info: tarfile.TarInfo, staging: Path) -> tuple[int, str]:
    path = staging.joinpath(*Path(info.name).parts[1:])
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    digest, size, source = hashlib.sha256(), 0, tar.extractfile(info)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, info.mode & 0o700 or 0o600)
    with os.fdopen(fd, "wb") as f:
        while chunk := source.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
            f.write(chunk)
        f.flush()
        os.fsync(f.fileno())
    return size, digest.hexdigest()


def _verify(manifest: dict | None, found: dict[str, tuple[int, str]], passphrase: bytes, archive: Path) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupTampered(f"{archive} has no {FORMAT} manifest (cut short, or not a gwx node backup)")
    key = _mac_key(passphrase, bytes.fromhex(manifest.get("salt", "")))
    if not hmac.compare_digest(str(manifest.get("mac", "")), _mac(manifest, key)):
        raise BackupTampered(f"{archive}: the manifest's HMAC does not match — changed, or made with another "
                             "node passphrase")
    listed = {name: (entry["size"], entry["sha256"]) for name, entry in manifest["files"].items()}
    changed = sorted(n for n in listed.keys() | found.keys() if listed.get(n) != found.get(n))
    if changed:
        raise BackupTampered(f"{archive}: {len(changed)} file(s) differ from the manifest: {', '.join(changed[:5])}",
                             files=changed[:20])
