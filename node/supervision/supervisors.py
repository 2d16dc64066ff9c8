"""Who supervises a unit (督办 goes there): one rule, read where the network says it.

The network directory's ``supervisor`` (业务主管单位) when it names one, else the directory's
``parent``; a node without a directory (static peers) uses the ``parent`` node.toml gives the
hosted unit. None: nobody to escalate to (the top of the tree).

:func:`may_supervise` judges a 督办 that arrived from another node. Where this node's directory
lists the late unit, the claimed supervisor must be the one the directory names. Where nothing here
says who supervises it (static peers, a unit the directory does not list), the claim is taken: the
acceptor has already checked that the origin node hosts the late unit, so a node can only escalate
its own units, which it could as well write documents about.

:func:`supervised_by` is the same rule read the other way: the units a supervising unit supervises,
which is a console supervisor's scope when its account names that unit (``gwx user add --role
supervisor --supervising-unit``), read at each request so a new directory moves it.
"""

from __future__ import annotations

from node.context import NodeContext


def supervisor_of(ctx: NodeContext, unit: str) -> str | None:
    directory_of = getattr(ctx.router, "directory", None)
    directory = directory_of() if directory_of is not None else None
    entry = directory.unit(unit) if directory is not None else None
    if entry is not None:
        return entry.supervisor or entry.parent
    hosted = ctx.config.unit(unit)
    return hosted.parent if hosted is not None else None


def may_supervise(ctx: NodeContext, unit: str, claimed: str) -> bool:
    directory_of = getattr(ctx.router, "directory", None)
    directory = directory_of() if directory_of is not None else None
    entry = directory.unit(unit) if directory is not None else None
    if entry is not None:
        return (entry.supervisor or entry.parent) == claimed
    hosted = ctx.config.unit(unit)
    return hosted is None or hosted.parent == claimed


def supervised_by(ctx: NodeContext, supervising_unit: str) -> tuple[str, ...]:
    """Every unit whose supervisor (:func:`supervisor_of`) is ``supervising_unit``: the directory's
    units where it lists them, and the hosted units it does not list by their node.toml parent."""
    directory_of = getattr(ctx.router, "directory", None)
    directory = directory_of() if directory_of is not None else None
    found: list[str] = []
    listed: set[str] = set()
    if directory is not None:
        for entry in directory.units:
            listed.add(entry.code)
            if (entry.supervisor or entry.parent) == supervising_unit:
                found.append(entry.code)
    found += [u.code for u in ctx.config.units if u.code not in listed and u.parent == supervising_unit]
    return tuple(sorted(set(found)))
