"""Canonical schema text: `parse_schema(print_schema(s)) == s` for every valid `Schema`.

Layout: `use` lines (sorted), caveats, definitions, roles, in source order within each
group, one blank line between blocks, tab indentation. Inside a definition: relations,
then `inherit` lines, then permissions. Doc comments are printed back. Every compound
operand is parenthesised except the left one of a chain of `-`.
"""

from __future__ import annotations

from authz_service.schema.ast import (
    AllowedSubject,
    Arrow,
    CaveatDef,
    Definition,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    RelationRef,
    RoleDef,
    Schema,
    SelfRef,
    Union,
)

__all__ = ["describe_subject", "print_expr", "print_schema"]


def print_schema(schema: Schema) -> str:
    blocks: list[str] = []
    if schema.uses:
        blocks.append("".join(f"use {feature}\n" for feature in sorted(schema.uses)))
    blocks.extend(_caveat(c) for c in schema.caveats)
    blocks.extend(_definition(d) for d in schema.definitions)
    blocks.extend(_role(r) for r in schema.roles)
    return "\n".join(blocks)


def _doc(doc: str, indent: str = "") -> str:
    # Normalised as the lexer reads doc comments back; `*/` would end the comment early.
    lines = [line.strip() for line in doc.replace("*/", "* /").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    while lines and not lines[0]:
        lines.pop(0)
    if not lines:
        return ""
    if len(lines) == 1 and not lines[0].startswith("*"):
        return f"{indent}/** {lines[0]} */\n"
    body = "".join(f"{indent} *{' ' if line else ''}{line}\n" for line in lines)
    return f"{indent}/**\n{body}{indent} */\n"


def _caveat(caveat: CaveatDef) -> str:
    params = ", ".join(f"{name} {type_text}" for name, type_text in caveat.parameters)
    expr = caveat.expression
    if "'''" in expr or '"""' in expr:
        body = f"\t{expr}\n"  # whitespace inside a multi-line string is part of its value
    else:
        body = "".join(f"\t{line}\n" if line else "\n" for line in expr.split("\n"))
    return f"{_doc(caveat.doc)}caveat {caveat.name}({params}) {{\n{body}}}\n"


def _definition(definition: Definition) -> str:
    groups: list[str] = []
    if definition.relations:
        groups.append(
            "".join(
                f"{_doc(r.doc, chr(9))}\trelation {r.name}: "
                + " | ".join(describe_subject(s) for s in r.allowed)
                + "\n"
                for r in definition.relations
            )
        )
    if definition.inherits:
        groups.append("".join(f"\tinherit {name}\n" for name in definition.inherits))
    if definition.permissions:
        groups.append(
            "".join(
                f"{_doc(p.doc, chr(9))}\t{'' if p.delegable else 'nondelegable '}"
                f"permission {p.name} = {print_expr(p.expr)}\n"
                for p in definition.permissions
            )
        )
    head = f"{_doc(definition.doc)}definition {definition.name} {{"
    if not groups:
        return head + "}\n"
    return head + "\n" + "\n".join(groups) + "}\n"


def describe_subject(subject: AllowedSubject) -> str:
    text = subject.type
    if subject.wildcard:
        text += ":*"
    elif subject.relation:
        text += f"#{subject.relation}"
    if subject.caveat and subject.expiration:
        text += f" with {subject.caveat} and expiration"
    elif subject.caveat:
        text += f" with {subject.caveat}"
    elif subject.expiration:
        text += " with expiration"
    return text


def _role(role: RoleDef) -> str:
    if not role.permissions:
        return f"{_doc(role.doc)}role {role.name} {{}}\n"
    items = "".join(f"\t{d}.{p},\n" for d, p in role.permissions)
    return f"{_doc(role.doc)}role {role.name} {{\n{items}}}\n"


_COMPOUND = (Union, Intersection, Exclusion)


def print_expr(expr: Expr) -> str:
    match expr:
        case Nil():
            return "nil"
        case SelfRef():
            return "self"
        case RelationRef(name=name):
            return name
        case Arrow(relation=relation, target=target, mode=mode):
            return f"{relation}->{target}" if mode == "any" else f"{relation}.all({target})"
        case Union(children=children):
            return " + ".join(_operand(c) for c in children)
        case Intersection(children=children):
            return " & ".join(_operand(c) for c in children)
        case Exclusion(base=base, subtracted=subtracted):
            left = print_expr(base) if isinstance(base, Exclusion) else _operand(base)
            return f"{left} - {_operand(subtracted)}"
    raise TypeError(f"not an expression: {expr!r}")  # pragma: no cover


def _operand(child: Expr) -> str:
    """Compound operands are always parenthesised, so the text never relies on precedence
    (which differs from arithmetic: `a - b + c` is `a - (b + c)`). The one exception, the
    left operand of `-` being another `-`, reads the same either way."""
    text = print_expr(child)
    return f"({text})" if isinstance(child, _COMPOUND) else text
