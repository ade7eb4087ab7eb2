"""The seeded data set of the Check benchmark, and a reference evaluator for it.

Shape (seed 42 unless told otherwise; the same seed always gives the same rows):

- 1,000 users `user:u0000` ... `user:u0999`;
- 100 groups in three layers nested through `group#member`: 10 top groups, 30 middle
  groups each nested in one top group, 60 leaf groups each nested in one middle group, so
  a leaf member reaches its top group through a chain of three groups. Most users are
  members of one to three leaf groups, some directly of a middle or top group;
- 1,000 folders: 200 roots and 800 nested under an earlier folder, at most four levels
  deep. Folders are viewable by one or two groups and sometimes by a user directly; a
  folder's viewers can view every folder below it (`parent->view`);
- 100,000 documents, each in one folder with one owner; 10% have a direct viewer and 2%
  ban a user, which the `-` exclusion applies even against owners and folder viewers.

The reference evaluator (`Reference.allowed`) answers `document#view` from these rows
in plain Python: the benchmark checks the server's answers against it, so a fast wrong
answer cannot pass for a fast right one.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "SCALES",
    "SCHEMA",
    "TENANT",
    "Dataset",
    "Reference",
    "Shape",
    "generate",
    "hot_pairs",
    "miss_pair",
]

TENANT = "bench"

SCHEMA = """\
definition user {}

/** Groups nest: a member of a member group is a member. */
definition group {
    relation member: user | group#member
}

definition folder {
    relation parent: folder
    relation viewer: user | group#member
    permission view = viewer + parent->view
}

definition document {
    relation folder: folder
    relation owner: user
    relation viewer: user | group#member
    relation banned: user
    permission view = (owner + viewer + folder->view) - banned
    permission edit = owner - banned
    permission manage = owner
}
"""

TOP_GROUPS, MID_GROUPS, LEAF_GROUPS = 10, 30, 60
MAX_FOLDER_DEPTH = 4
EVERYONE = "all"  # the group every user is a direct member of (scaled shapes only)


@dataclass(frozen=True)
class Shape:
    users: int
    folders: int
    root_folders: int
    documents: int
    everyone: bool  # add `group:all` with every user as a direct member

    @property
    def pairs(self) -> int:
        return self.documents * self.users


SCALES = {
    # The Check benchmark's data set (about 216k relationships).
    "default": Shape(1_000, 1_000, 200, 100_000, everyone=False),
    # The decision-path benchmark's two ends: about 10k and 1M relationships.
    "10k": Shape(200, 200, 40, 4_000, everyone=True),
    "1m": Shape(10_000, 10_000, 2_000, 450_000, everyone=True),
}
DEFAULT = SCALES["default"]
USERS, FOLDERS, DOCUMENTS = DEFAULT.users, DEFAULT.folders, DEFAULT.documents

# A relationship as (resource, relation, subject) in the text form of the API.
Row = tuple[str, str, str]


def user_id(i: int) -> str:
    return f"u{i:04d}"


def doc_id(i: int) -> str:
    return f"d{i:06d}"


def folder_id(i: int) -> str:
    return f"f{i:05d}" if i >= 10_000 else f"f{i:04d}"


@dataclass
class Dataset:
    seed: int
    shape: Shape
    rows: list[Row]
    # Evaluation indexes, by integer index (user i is `user_id(i)`, and so on).
    group_parents: dict[str, list[str]]  # group -> groups it is a member of (directly)
    user_groups: list[set[str]]  # user -> groups it is a direct member of
    folder_parent: list[int | None]
    folder_viewer_groups: list[set[str]]
    folder_viewer_users: list[set[int]]
    doc_folder: list[int]
    doc_owner: list[int]
    doc_viewers: dict[int, set[int]] = field(default_factory=dict)
    doc_viewer_groups: dict[int, set[str]] = field(default_factory=dict)
    doc_banned: dict[int, set[int]] = field(default_factory=dict)

    def counts(self) -> dict[str, int]:
        return {
            "users": self.shape.users,
            "groups": TOP_GROUPS + MID_GROUPS + LEAF_GROUPS + self.shape.everyone,
            "folders": self.shape.folders,
            "documents": self.shape.documents,
            "relationships": len(self.rows),
        }

    def write_ndjson(self, path: Path) -> None:
        """The rows in the NDJSON form `authz import` reads."""
        with path.open("w", encoding="utf-8") as out:
            for resource, relation, subject in self.rows:
                out.write(
                    json.dumps({"resource": resource, "relation": relation, "subject": subject})
                )
                out.write("\n")

    def reference(self) -> Reference:
        return Reference(self)


GROUPS = (
    [f"t{i:02d}" for i in range(TOP_GROUPS)],
    [f"m{i:02d}" for i in range(MID_GROUPS)],
    [f"l{i:02d}" for i in range(LEAF_GROUPS)],
)


def generate(seed: int = 42, scale: str | Shape = "default") -> Dataset:
    """The data set of `scale`: a name in SCALES, or a Shape of its own."""
    rng = random.Random(seed)
    data = Dataset(
        seed=seed,
        shape=scale if isinstance(scale, Shape) else SCALES[scale],
        rows=[],
        group_parents={g: [] for layer in GROUPS for g in layer},
        user_groups=[],
        folder_parent=[],
        folder_viewer_groups=[],
        folder_viewer_users=[],
        doc_folder=[],
        doc_owner=[],
    )
    # The order of these calls is part of the data set: each draws from the same stream.
    _groups(rng, data)
    _users(rng, data)
    _folders(rng, data)
    _documents(rng, data)
    if data.shape.everyone:  # after everything else: the rows above stay the same
        data.rows += [
            (f"group:{EVERYONE}", "member", f"user:{user_id(u)}") for u in range(data.shape.users)
        ]
    return data


def _groups(rng: random.Random, data: Dataset) -> None:
    tops, mids, leaves = GROUPS
    for child_layer, parent_layer in ((mids, tops), (leaves, mids)):
        for child in child_layer:
            parent = rng.choice(parent_layer)
            data.group_parents[child].append(parent)
            data.rows.append((f"group:{parent}", "member", f"group:{child}#member"))


def _users(rng: random.Random, data: Dataset) -> None:
    tops, mids, leaves = GROUPS
    for u in range(data.shape.users):
        roll = rng.random()
        if roll < 0.05:
            chosen = {rng.choice(tops)}
        elif roll < 0.15:
            chosen = {rng.choice(mids)}
        elif roll < 0.20:
            chosen = set()  # in no group: sees only direct grants
        else:
            chosen = set(rng.sample(leaves, rng.randint(1, 3)))
        data.user_groups.append(chosen)
        for g in sorted(chosen):
            data.rows.append((f"group:{g}", "member", f"user:{user_id(u)}"))


def _folders(rng: random.Random, data: Dataset) -> None:
    groups = [g for layer in GROUPS for g in layer]
    depth: list[int] = []
    shape = data.shape
    for f in range(shape.folders):
        name = f"folder:{folder_id(f)}"
        parent: int | None = None
        if f < shape.root_folders:
            depth.append(1)
        else:
            parent = rng.randrange(f)
            while depth[parent] >= MAX_FOLDER_DEPTH:
                parent = rng.randrange(f)
            depth.append(depth[parent] + 1)
            data.rows.append((name, "parent", f"folder:{folder_id(parent)}"))
        data.folder_parent.append(parent)
        # 70% of folders grant to one or two groups, 30% to one user directly.
        viewers = set(rng.sample(groups, rng.choice((1, 1, 2)))) if rng.random() < 0.7 else set()
        users = {rng.randrange(shape.users)} if rng.random() < 0.3 else set()
        data.folder_viewer_groups.append(viewers)
        data.folder_viewer_users.append(users)
        for g in sorted(viewers):
            data.rows.append((name, "viewer", f"group:{g}#member"))
        for u in sorted(users):
            data.rows.append((name, "viewer", f"user:{user_id(u)}"))


def _documents(rng: random.Random, data: Dataset) -> None:
    groups = [g for layer in GROUPS for g in layer]
    rows = data.rows
    shape = data.shape
    for d in range(shape.documents):
        name = f"document:{doc_id(d)}"
        folder = rng.randrange(shape.folders)
        owner = rng.randrange(shape.users)
        data.doc_folder.append(folder)
        data.doc_owner.append(owner)
        rows.append((name, "folder", f"folder:{folder_id(folder)}"))
        rows.append((name, "owner", f"user:{user_id(owner)}"))
        roll = rng.random()
        if roll < 0.08:
            viewer = rng.randrange(shape.users)
            data.doc_viewers[d] = {viewer}
            rows.append((name, "viewer", f"user:{user_id(viewer)}"))
        elif roll < 0.10:
            group = rng.choice(groups)
            data.doc_viewer_groups[d] = {group}
            rows.append((name, "viewer", f"group:{group}#member"))
        if rng.random() < 0.02:
            banned = rng.randrange(shape.users)
            data.doc_banned[d] = {banned}
            rows.append((name, "banned", f"user:{user_id(banned)}"))


class Reference:
    """`document#view` for (document index, user index), computed from the generator's
    own indexes rather than from the rows the server stores."""

    def __init__(self, data: Dataset) -> None:
        self._data = data
        self._memberships = [self._closure(direct) for direct in data.user_groups]
        self._folder_groups: list[frozenset[str]] = []
        self._folder_users: list[frozenset[int]] = []
        for f in range(len(data.folder_parent)):
            groups: set[str] = set()
            users: set[int] = set()
            node: int | None = f
            while node is not None:
                groups |= data.folder_viewer_groups[node]
                users |= data.folder_viewer_users[node]
                node = data.folder_parent[node]
            self._folder_groups.append(frozenset(groups))
            self._folder_users.append(frozenset(users))

    def _closure(self, direct: set[str]) -> frozenset[str]:
        seen: set[str] = set()
        todo = list(direct)
        while todo:
            g = todo.pop()
            if g not in seen:
                seen.add(g)
                todo.extend(self._data.group_parents[g])
        return frozenset(seen)

    @property
    def shape(self) -> Shape:
        return self._data.shape

    def viewable(self, user: int) -> set[int]:
        """Every document `user` may view (LookupResources), by brute force."""
        return {d for d in range(self.shape.documents) if self.allowed(d, user)}

    def permissions(self, doc: int, user: int) -> dict[str, bool]:
        """Every permission of `document`, in schema order (ListPermissions)."""
        data = self._data
        banned = user in data.doc_banned.get(doc, ())
        owner = data.doc_owner[doc] == user
        return {"view": self.allowed(doc, user), "edit": owner and not banned, "manage": owner}

    def allowed(self, doc: int, user: int) -> bool:
        data = self._data
        if user in data.doc_banned.get(doc, ()):
            return False
        if data.doc_owner[doc] == user or user in data.doc_viewers.get(doc, ()):
            return True
        groups = self._memberships[user]
        if groups & data.doc_viewer_groups.get(doc, set()):
            return True
        folder = data.doc_folder[doc]
        return user in self._folder_users[folder] or not groups.isdisjoint(
            self._folder_groups[folder]
        )


def hot_pairs(data: Dataset, count: int = 64, seed: int = 42) -> list[tuple[int, int, bool]]:
    """`count` (document, user, allowed) pairs, half allowed and half denied, including
    some owners and banned users so every branch of `view` is exercised."""
    rng = random.Random(seed + 1)
    ref = data.reference()
    allowed: list[tuple[int, int, bool]] = []
    denied: list[tuple[int, int, bool]] = []
    banned = sorted(data.doc_banned)
    for d in rng.sample(banned, 4):
        denied.append((d, next(iter(data.doc_banned[d])), False))
    for _ in range(4):
        d = rng.randrange(data.shape.documents)
        allowed.append((d, data.doc_owner[d], True))
    while len(allowed) < count // 2 or len(denied) < count // 2:
        d, u = rng.randrange(data.shape.documents), rng.randrange(data.shape.users)
        verdict = ref.allowed(d, u)
        bucket = allowed if verdict else denied
        if len(bucket) < count // 2:
            bucket.append((d, u, verdict))
    pairs = allowed + denied
    rng.shuffle(pairs)
    return pairs


# Cache-miss pairs: a bijection k -> (document, user) over all pairs (10^8 by default), so
# every k in a run maps to a pair no earlier request of that run asked (the cache cannot
# hit) while consecutive k land on unrelated documents and users.
_STRIDE = 48_271_003  # 11 x 1301 x 3373: coprime with every shape's pair count


def miss_pair(k: int, shape: Shape = DEFAULT) -> tuple[int, int]:
    x = (k * _STRIDE + 12_345) % shape.pairs
    return x % shape.documents, x // shape.documents
