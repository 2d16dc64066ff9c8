"""Routes through the network directory: from one node, the next hop towards any other. Pure.

The rules (one place decides them; the node's :class:`~node.federation.routing.DirectoryRouter`
asks this table and nothing else):

- Edges are the directory's tree — each node and its parent, both ways — and the direct links the
  directory allows, both ways. A node talks to no one else.
- From ``me`` to a destination the route is a shortest path over those edges. Without direct links
  that is "up to the common ancestor, then down"; a link is taken where it makes the path shorter.
- Ties are broken the same way on every node — tree edges before links, the parent before the
  children, then by node id — so every node computes the same routes from the same directory.
- Every hop of a shortest path is one step closer to the destination, so nodes holding the same
  directory never send an envelope round in a loop. Nodes holding *different* directories might
  (a unit moved, one copy not yet updated): the envelope's hop limit and the receiver's refusal to
  send an envelope straight back where it came from end that (``node.federation.relay``).

A directory is well formed (one root, no cycle: :func:`exchange_protocol.directory.check`), so every
node it lists is reachable from every other.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping

from .directory import Directory


class RouteTable:
    """The routes from one node (``me``) to every node of a tree; built once per directory.

    ``parents`` maps every node to its parent (None for the root); ``links`` are the direct links
    allowed besides the tree. :meth:`of` builds the table from a :class:`Directory`.
    """

    def __init__(self, parents: Mapping[str, str | None], links: Iterable[tuple[str, str]], me: str) -> None:
        self.me = me
        children: dict[str, list[str]] = {node: [] for node in parents}
        for node, parent in parents.items():
            if parent is not None:
                children[parent].append(node)
        tree = {node: ([parent] if parent is not None else []) + sorted(children[node])
                for node, parent in parents.items()}
        linked: dict[str, set[str]] = {node: set() for node in parents}
        for a, b in links:
            linked[a].add(b)
            linked[b].add(a)
        self._edges = {node: tree[node] + sorted(linked[node] - set(tree[node])) for node in tree}
        self._first_hop: dict[str, str] = {}
        self._previous: dict[str, str] = {}
        if me in self._edges:
            self._search()

    @classmethod
    def of(cls, directory: Directory, me: str) -> RouteTable:
        return cls({n.id: n.parent for n in directory.nodes}, directory.links, me)

    def _search(self) -> None:
        """Breadth first from ``me``: the first hop and the predecessor of every node."""
        queue = deque([self.me])
        self._previous[self.me] = self.me
        while queue:
            node = queue.popleft()
            for neighbour in self._edges[node]:
                if neighbour in self._previous:
                    continue
                self._previous[neighbour] = node
                self._first_hop[neighbour] = neighbour if node == self.me else self._first_hop[node]
                queue.append(neighbour)

    @property
    def listed(self) -> bool:
        """Whether ``me`` is in the directory at all (a node outside it routes nothing through it)."""
        return self.me in self._edges

    def knows(self, node: str) -> bool:
        return node in self._edges

    def neighbours(self) -> tuple[str, ...]:
        """The nodes ``me`` exchanges with directly: parent, children, direct links."""
        return tuple(self._edges.get(self.me, ()))

    def next_hop(self, destination: str) -> str | None:
        """The neighbour to hand an envelope for ``destination`` to; None if either node is not listed
        (or ``destination`` is ``me``)."""
        return self._first_hop.get(destination)

    def path(self, destination: str) -> tuple[str, ...]:
        """Every node from the first hop to ``destination`` (empty if there is no route)."""
        if destination not in self._first_hop:
            return ()
        nodes = [destination]
        while (previous := self._previous[nodes[-1]]) != self.me:
            nodes.append(previous)
        return tuple(reversed(nodes))


__all__ = ["RouteTable"]
