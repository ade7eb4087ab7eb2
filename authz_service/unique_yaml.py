"""YAML loading that refuses a key given twice in one mapping, and a lone surrogate.

YAML parsers keep the last of two equal keys, so a gateway config with `unmatched: deny`
and, further down, `unmatched: allow` would load as allow, with nothing to show for the
first line; a certificate map entry with `tenant: acme` and then `tenant: "*"` would
stand for every tenant. An edit must not be silently undone, so the second key is an
error naming both lines. Every YAML the service reads goes through here: the gateway
config, the certificate map, validation files (SpiceDB's own loader refuses a repeated
key too), `authz import` files and the console's files. Keys merged in with `<<` may still be replaced
by explicit ones: that is what a merge is for.

A double-quoted string may escape half of a UTF-16 surrogate pair (`"\\ud800"`), which
is no character and cannot be written out again as UTF-8 (surrogates.py): it is an error
at its line and column too, rather than a failure wherever the text is next written. A
whole pair escaped (`"\\ud83d\\ude00"`) is the one character it makes, as in JSON.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any

import yaml
from yaml.constructor import ConstructorError
from yaml.nodes import MappingNode, ScalarNode

from authz_service.errors import echo
from authz_service.surrogates import lone_surrogate

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

    def construct_scalar(self, node: ScalarNode | MappingNode) -> Any:
        # PyYAML reads the escaped pair `"\ud83d\ude00"` as two halves; JSON, which YAML
        # extends, as the one character they make. Halves left alone are no character.
        value = super().construct_scalar(node)
        value = value.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
        problem = lone_surrogate(value, "a string")
        if problem is not None:
            raise ConstructorError(problem=problem, problem_mark=node.start_mark)
        return value


def load_unique(text: str) -> Any:
    """`yaml.safe_load`, but a key given twice in a mapping, or a string holding a lone
    surrogate, raises a `yaml.YAMLError`."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader: no arbitrary objects
