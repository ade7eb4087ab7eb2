"""Permissions that refer to themselves, found in time linear in the schema.

A chain of N permissions (`p0 = p1`, `p1 = p2`, ...) once took a breadth-first search
from every permission, each copying its path: cubic, 12 s for 2,000 permissions. Here
the strongly connected components are found once (Tarjan's algorithm, iterative so a
long chain cannot exhaust the Python stack), and one shortest cycle is traced, inside
its component only, for the first member of each component that has a cycle.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

__all__ = ["self_references"]


def self_references(
    order: Sequence[str], edges: Mapping[str, Sequence[str]]
) -> list[tuple[str, list[str]]]:
    """For each cycle of `edges`: its first member in `order` and a shortest path from
    it back to itself (`[a, b, a]`). One entry per strongly connected component."""
    found: list[tuple[str, list[str]]] = []
    position = {name: i for i, name in enumerate(order)}
    for component in _components(order, edges):
        members = set(component)
        start = min(component, key=position.__getitem__)
        if len(component) > 1 or start in edges.get(start, ()):
            found.append((start, _shortest_cycle(start, edges, members)))
    found.sort(key=lambda entry: position[entry[0]])
    return found


def _components(order: Sequence[str], edges: Mapping[str, Sequence[str]]) -> list[list[str]]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in order:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, child = work.pop()
            if child == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges.get(node, ())
            if child < len(targets):
                work.append((node, child + 1))
                nxt = targets[child]
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if work:  # returning to the parent: pass the low link up
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(component)
    return components


def _shortest_cycle(start: str, edges: Mapping[str, Sequence[str]], members: set[str]) -> list[str]:
    """Breadth first from `start` within its component, so the path is a shortest one."""
    parent: dict[str, str] = {}
    queue: deque[str] = deque([start])
    while queue:
        node = queue.popleft()
        for nxt in edges.get(node, ()):
            if nxt == start:
                path = [node]
                while path[-1] != start:
                    path.append(parent[path[-1]])
                return [*reversed(path), start]
            if nxt in members and nxt not in parent:
                parent[nxt] = node
                queue.append(nxt)
    return [start, start]  # pragma: no cover - every component passed in has a cycle
