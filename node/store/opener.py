"""Opening the node's store: the one place outside the backends that names one.

Everything else receives a :class:`node.store.interfaces.NodeStore` and never learns which database
is behind it. node.toml's ``[store]`` (:class:`node.config.StoreSettings`) chooses: SQLite (the
default, ``data/gwx.db``) or PostgreSQL (``backend = "postgresql"``, ``dsn``); the blobs are in
``data/blobs`` with either.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from node.config import StoreSettings
from node.store.interfaces import NodeStore


def _utc_now() -> datetime:
    return datetime.now(UTC)


async def open_store(data_dir: str | Path, *, node_id: str | None = None,
                     clock: Callable[[], datetime] = _utc_now, max_blob_size: int | None = None,
                     recover: bool = True, settings: StoreSettings | None = None) -> NodeStore:
    """Open (creating, migrating and recovering as needed) the store of node ``node_id`` under
    ``data_dir``, in the database ``settings`` names (SQLite in ``data_dir`` when none)."""
    settings = settings or StoreSettings()
    if settings.backend == "postgresql":
        from node.store.postgresql.store import Store as PgStore

        return await PgStore.open(data_dir, dsn=settings.dsn, clock=clock, max_blob_size=max_blob_size,
                                  recover=recover, node_id=node_id, lease_seconds=settings.lease_seconds,
                                  worker=settings.worker)
    from node.store.sqlite.store import Store

    return await Store.open(data_dir, clock=clock, max_blob_size=max_blob_size, recover=recover,
                            node_id=node_id)


def read_status_rows(data_dir: str | Path, settings: StoreSettings | None = None) -> dict[str, list[tuple]] | None:
    """Read-only rows for the status report (None: no database yet); see node.ops.status."""
    settings = settings or StoreSettings()
    if settings.backend == "postgresql":
        from node.store.postgresql.status_rows import read_status_rows as read_pg

        return read_pg(settings.dsn)
    from node.store.sqlite.status_rows import read_status_rows as read

    return read(Path(data_dir))


def read_schema_version(data_dir: str | Path) -> tuple[int, int] | None:
    """The database's schema version and the newest this gwx knows, read-only (None: no database
    yet); for ``gwx node check``."""
    from node.store.sqlite.status_rows import read_schema_version as read

    return read(Path(data_dir))


def snapshot_store(data_dir: str | Path, dest: Path) -> list[tuple[str, Path]]:
    """A consistent copy of the database at ``dest`` (the node may be running), and each blob it
    refers to as (path inside ``data_dir``, path now); for ``gwx node backup``."""
    from node.store.sqlite.snapshot import blob_path, snapshot

    data_dir = Path(data_dir)
    return [(str(blob_path(data_dir, d).relative_to(data_dir)), blob_path(data_dir, d))
            for d in snapshot(data_dir, dest)]
