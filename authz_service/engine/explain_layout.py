"""Writing an explanation out as the graph it is: each step once, within a node limit.

The engine memoizes subproblems, so a step reached along several paths (a group nested
under two others) is one `ExplainNode` referenced by each parent. Written out as a tree
it would be copied once per path: 2^L copies for L levels of two-way nesting, which is
how a 57-relationship explanation once took seconds and gigabytes. `layout` walks the
graph depth first, numbers the steps met more than once, and stops after `max_nodes`
written steps and below `MAX_EXPLANATION_DEPTH`; `Step` is the result, a tree whose size
is the number of steps written. The API (`ExplanationNode.node_id`/`same_as`) and the
decision log share it.

The depth is bounded because the API nests each step's message in its parent's, and
protobuf decodes messages nested at most 100 deep: Explain through 30 nested folders
(four steps each) failed building its response. 64 steps leave room for the response
around the root and for a caveat context (at most 8 levels of struct) below the deepest.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from authz_service.engine.types import ExplainNode

__all__ = [
    "DEFAULT_MAX_EXPLANATION_NODES",
    "MAX_EXPLANATION_DEPTH",
    "Step",
    "any_truncated",
    "layout",
    "unique_nodes",
]

DEFAULT_MAX_EXPLANATION_NODES = 10_000
MAX_EXPLANATION_DEPTH = 64  # steps from the root to the deepest written, the root included


@dataclass(frozen=True, slots=True)
class Step:
    """One written step. `node_id` is set (from 1) on the first occurrence of a step met
    more than once; a later occurrence has `same_as` set to it and no children.
    `truncated` means some of the node's children were left out by the node limit, or all
    of them by the depth limit."""

    node: ExplainNode
    node_id: int = 0
    same_as: int = 0
    truncated: bool = False
    children: tuple[Step, ...] = ()


def layout(root: ExplainNode, max_nodes: int = DEFAULT_MAX_EXPLANATION_NODES) -> Step:
    """The steps to write for `root`: linear in the graph, at most `max_nodes` of them,
    at most MAX_EXPLANATION_DEPTH deep."""
    met: dict[int, int] = {}  # id(node) -> times met within the limit
    kept: dict[int, int] = {}  # id(node) -> children kept, for nodes cut by the limit
    first: list[int] = []  # id(node) of first occurrences, in depth-first order
    budget = max_nodes - 1  # the root is always written

    def count(node: ExplainNode, depth: int) -> None:
        nonlocal budget
        key = id(node)
        met[key] = met.get(key, 0) + 1
        if met[key] > 1:
            return
        first.append(key)
        for index, child in enumerate(node.children):
            if budget <= 0 or depth >= MAX_EXPLANATION_DEPTH:
                kept[key] = index
                return
            budget -= 1
            count(child, depth + 1)

    count(root, 1)
    numbers: dict[int, int] = {}
    for key in first:
        if met[key] > 1:
            numbers[key] = len(numbers) + 1
    written: set[int] = set()

    def build(node: ExplainNode) -> Step:
        key = id(node)
        if key in written:
            return Step(node, same_as=numbers[key])
        written.add(key)
        limit = kept.get(key, len(node.children))
        children = tuple(build(child) for child in node.children[:limit])
        return Step(node, numbers.get(key, 0), 0, key in kept, children)

    return build(root)


def unique_nodes(root: ExplainNode) -> Iterator[ExplainNode]:
    """Every distinct step of the graph once, depth first (for reading, not writing)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        yield node
        stack.extend(reversed(node.children))


def any_truncated(step: Step) -> bool:
    """True if the node limit cut any step."""
    return step.truncated or any(any_truncated(child) for child in step.children)
