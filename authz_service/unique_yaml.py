"""YAML loading that refuses a key given twice in one mapping.

YAML parsers keep the last of two equal keys, so a gateway config with `unmatched: deny`
and, further down, `unmatched: allow` would load as allow, with nothing to show for the
first line; a certificate map entry with `tenant: acme` and then `tenant: "*"` would
stand for every tenant. An edit must not be silently undone, so the second key is an
error naming both lines. Every YAML the service reads goes through here: the gateway
config, the certificate map, validation files (SpiceDB's own loader refuses a repeated
key too), `authz import` files and the console's files. Keys merged in with `<<` may still be replaced
by explicit ones: that is what a merge is for.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode

from authz_service.errors import echo

__all__ = ["load_unique"]

_MERGE = "tag:yaml.org,2002:merge"


class _UniqueKeyLoader(yaml.SafeLoader):
    def construct_mapping(self, node: MappingNode, deep: bool = False) -> dict[Hashable, Any]:
        first_line: dict[Any, int] = {}
        for key_node, _ in node.value:
            if key_node.tag == _MERGE:
                continue
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                first = first_line.get(key)
            except TypeError:  # unhashable: the base class refuses it with its own error
                continue
            if first is not None:
                raise ConstructorError(
                    problem=f"duplicate key `{echo(key)}` on line {line} (first on line {first})",
                    problem_mark=key_node.start_mark,
                )
            first_line[key] = line
        return super().construct_mapping(node, deep)


def load_unique(text: str) -> Any:
    """`yaml.safe_load`, but a key given twice in a mapping raises a `yaml.YAMLError`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
