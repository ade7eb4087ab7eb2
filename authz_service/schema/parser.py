"""Recursive-descent parser: schema text -> `Schema` (syntax only, no type checking).

Grammar (keywords are contextual, see docs/schema.md):

    schema     := use* (definition | caveat | role)* EOF
    use        := "use" NAME
    definition := "definition" TYPE "{" (relation | permission | inherit)* "}"
    relation   := "relation" NAME ":" subject ("|" subject)*
    subject    := TYPE [":" "*" | "#" NAME] ["with" (CAVEAT ["and" "expiration"] | "expiration")]
    permission := ["nondelegable"] "permission" NAME "=" exclusion
    inherit    := "inherit" NAME
    exclusion  := intersect ("-" intersect)*          loosest, left-associative
    intersect  := union ("&" union)*
    union      := term ("+" term)*
    term       := "(" exclusion ")" | "nil" | "self"
                | NAME ["->" NAME | "." ("any" | "all") "(" NAME ")"]
    caveat     := "caveat" CAVEAT "(" [param ("," param)*] ")" "{" <CEL text> "}"
    param      := IDENT ctype            ctype := NAME ["<" ctype ("," ctype)* ">"]
    role       := "role" NAME "{" [TYPE "." NAME ("," TYPE "." NAME)* [","]] "}"

A chain of one operator becomes one n-ary node (`a + b + c` is a three-child `Union`);
parentheses keep their structure (`a + (b + c)` nests).
"""

from __future__ import annotations

import re

from authz_service.errors import SchemaError
from authz_service.schema.ast import (
    AllowedSubject,
    Arrow,
    CaveatDef,
    Definition,
    Exclusion,
    Expr,
    Intersection,
    Nil,
    Permission,
    Relation,
    RelationRef,
    RoleDef,
    Schema,
    SelfRef,
    Span,
    Union,
)
from authz_service.schema.lexer import Lexer, Token, normalize_cel

__all__ = ["parse_schema"]

_SEGMENT = r"[a-z][a-z0-9_]{1,62}[a-z0-9]"
_RULE = "3 to 64 characters of a-z, 0-9 and _, starting with a letter, not ending with _"
# (pattern, the rule in words for the error message)
_NAME_RE = (re.compile(rf"{_SEGMENT}\Z"), _RULE)
_TYPE_RE = (re.compile(rf"(?:{_SEGMENT}/)*{_SEGMENT}\Z"), f"segments of {_RULE}, separated by /")
_PARAM_RE = (re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z"), "letters, digits and _")
# SpiceDB's lexer makes these keywords everywhere, so SpiceDB refuses them as any name.
_SPICEDB_KEYWORDS = frozenset({"caveat", "definition", "nil", "permission", "relation", "with"})
# And words that would be ambiguous here as a name in the place the name is used.
_RESERVED_MEMBER = _SPICEDB_KEYWORDS | {"self"}
_RESERVED_CAVEAT = _SPICEDB_KEYWORDS | {"expiration"}
FEATURES = frozenset({"expiration", "self"})
MAX_NESTING = 64  # parentheses, which this parser recurses into (operators: checker.py)


def parse_schema(text: str) -> Schema:
    """Parse schema text. Raises `SchemaError` carrying the line:column of the problem."""
    return _Parser(text).schema()


def _error(message: str, span: Span) -> SchemaError:
    return SchemaError(message, line=span.line, column=span.column)


class _Parser:
    def __init__(self, text: str) -> None:
        self._lexer = Lexer(text)
        self._tok = self._lexer.next_token()
        self._depth = 0

    # -- token helpers ------------------------------------------------------------------

    def _advance(self) -> Token:
        tok = self._tok
        self._tok = self._lexer.next_token()
        return tok

    def _at(self, text: str) -> bool:
        return self._tok.kind != "eof" and self._tok.text == text

    def _accept(self, text: str) -> bool:
        if self._at(text):
            self._advance()
            return True
        return False

    def _expect(self, text: str) -> Token:
        if not self._at(text):
            raise self._unexpected(f"`{text}`")
        return self._advance()

    def _unexpected(self, wanted: str) -> SchemaError:
        return _error(f"expected {wanted}, found {self._tok.describe()}", self._tok.span)

    def _name(
        self, what: str, syntax: tuple[re.Pattern[str], str], reserved: frozenset[str]
    ) -> Token:
        if self._tok.kind != "name":
            raise self._unexpected(f"{what} name")
        tok = self._advance()
        keyword = next((w for w in tok.text.split("/") if w in reserved), None)
        if keyword is not None:
            raise _error(f"`{keyword}` is a keyword and cannot be a {what} name", tok.span)
        pattern, rule = syntax
        if not pattern.match(tok.text):
            raise _error(f"invalid {what} name `{tok.text}`: use {rule}", tok.span)
        return tok

    # -- top level ----------------------------------------------------------------------

    def schema(self) -> Schema:
        uses: set[str] = set()
        definitions: list[Definition] = []
        caveats: list[CaveatDef] = []
        roles: list[RoleDef] = []
        while self._tok.kind != "eof":
            keyword = self._tok.text if self._tok.kind == "name" else ""
            if keyword == "use":
                if definitions or caveats or roles:
                    raise _error(
                        "`use` must come before definitions, caveats and roles", self._tok.span
                    )
                self._advance()
                feature = self._tok
                if feature.kind != "name" or feature.text not in FEATURES:
                    raise _error(f"unknown feature {feature.describe()} after `use`", feature.span)
                uses.add(self._advance().text)
            elif keyword == "definition":
                definitions.append(self._definition())
            elif keyword == "caveat":
                caveats.append(self._caveat())
            elif keyword == "role":
                roles.append(self._role())
            else:
                raise self._unexpected("`definition`, `caveat`, `role` or `use`")
        return Schema(tuple(definitions), tuple(caveats), tuple(roles), frozenset(uses))

    def _definition(self) -> Definition:
        doc = self._advance().doc
        name = self._name("definition", _TYPE_RE, _SPICEDB_KEYWORDS)
        self._expect("{")
        relations: list[Relation] = []
        permissions: list[Permission] = []
        inherits: list[Token] = []
        while not self._accept("}"):
            keyword = self._tok.text if self._tok.kind == "name" else ""
            if keyword == "relation":
                relations.append(self._relation())
            elif keyword in ("permission", "nondelegable"):
                permissions.append(self._permission())
            elif keyword == "inherit":
                self._advance()
                inherits.append(self._name("relation", _NAME_RE, _RESERVED_MEMBER))
            else:
                raise self._unexpected("`relation`, `permission`, `inherit` or `}`")
        return Definition(
            name.text,
            tuple(relations),
            tuple(permissions),
            tuple(t.text for t in inherits),
            doc=doc,
            span=name.span,
            inherit_spans=tuple(t.span for t in inherits),
        )

    def _relation(self) -> Relation:
        doc = self._advance().doc
        name = self._name("relation", _NAME_RE, _RESERVED_MEMBER)
        self._expect(":")
        allowed = [self._allowed_subject()]
        while self._accept("|"):
            allowed.append(self._allowed_subject())
        return Relation(name.text, tuple(allowed), doc=doc, span=name.span)

    def _allowed_subject(self) -> AllowedSubject:
        type_tok = self._name("definition", _TYPE_RE, _SPICEDB_KEYWORDS)
        relation, wildcard = "", False
        if self._accept(":"):
            self._expect("*")
            wildcard = True
        elif self._accept("#"):
            relation = self._name("relation", _NAME_RE, _RESERVED_MEMBER).text
        caveat: str | None = None
        expiration = False
        if self._accept("with"):
            if self._accept("expiration"):
                expiration = True
            else:
                caveat = self._name("caveat", _TYPE_RE, _RESERVED_CAVEAT).text
                if self._accept("and"):
                    self._expect("expiration")
                    expiration = True
        return AllowedSubject(type_tok.text, relation, wildcard, caveat, expiration, type_tok.span)

    def _permission(self) -> Permission:
        doc = self._tok.doc
        delegable = not self._accept("nondelegable")
        self._expect("permission")
        name = self._name("permission", _NAME_RE, _RESERVED_MEMBER)
        self._expect("=")
        expr = self._exclusion()
        return Permission(name.text, expr, delegable, doc=doc, span=name.span)

    # -- expressions --------------------------------------------------------------------

    def _exclusion(self) -> Expr:
        expr = self._intersection()
        while self._accept("-"):
            expr = Exclusion(expr, self._intersection(), span=expr.span)
        return expr

    def _intersection(self) -> Expr:
        children = [self._union()]
        while self._accept("&"):
            children.append(self._union())
        return (
            children[0] if len(children) == 1 else Intersection(tuple(children), children[0].span)
        )

    def _union(self) -> Expr:
        children = [self._term()]
        while self._accept("+"):
            children.append(self._term())
        return children[0] if len(children) == 1 else Union(tuple(children), children[0].span)

    def _term(self) -> Expr:
        tok = self._tok
        if self._accept("("):
            self._depth += 1
            if self._depth > MAX_NESTING:
                raise _error(f"expression nested deeper than {MAX_NESTING} parentheses", tok.span)
            inner = self._exclusion()
            self._expect(")")
            self._depth -= 1
            return inner
        if self._accept("nil"):
            return Nil(tok.span)
        if self._accept("self"):
            return SelfRef(tok.span)
        if tok.kind != "name":
            raise self._unexpected("a relation, permission, `nil`, `self` or `(`")
        name = self._name("relation", _NAME_RE, _RESERVED_MEMBER).text
        dotted = False
        if self._accept("->"):
            mode = "any"
        elif dotted := self._accept("."):
            mode = self._tok.text if self._tok.kind == "name" else ""
            if mode not in ("any", "all"):
                raise self._unexpected("`any` or `all`")
            self._advance()
            self._expect("(")
        else:
            return RelationRef(name, tok.span)
        target = self._name("permission", _NAME_RE, _RESERVED_MEMBER).text
        if dotted:
            self._expect(")")
        if self._at("->") or self._at("."):
            message = "chained arrows are not supported; use a permission in between"
            raise _error(message, self._tok.span)
        return Arrow(name, target, "all" if mode == "all" else "any", tok.span)

    # -- caveats and roles --------------------------------------------------------------

    def _caveat(self) -> CaveatDef:
        doc = self._advance().doc
        name = self._name("caveat", _TYPE_RE, _RESERVED_CAVEAT)
        self._expect("(")
        params: list[tuple[str, str]] = []
        spans: list[Span] = []
        if not self._at(")"):
            while True:
                param = self._name("parameter", _PARAM_RE, _SPICEDB_KEYWORDS)
                params.append((param.text, self._caveat_type()))
                spans.append(param.span)
                if not self._accept(","):
                    break
        self._expect(")")
        if not self._at("{"):
            raise self._unexpected("`{`")
        # The lexer is positioned right after the current token, the `{`.
        body = self._lexer.raw_block(self._tok.span)
        self._tok = self._lexer.next_token()
        expression = normalize_cel(body)
        if not expression:
            raise _error(f"caveat `{name.text}` has an empty expression", name.span)
        return CaveatDef(
            name.text,
            tuple(params),
            expression,
            doc=doc,
            span=name.span,
            parameter_spans=tuple(spans),
        )

    def _caveat_type(self) -> str:
        if self._tok.kind != "name":
            raise self._unexpected("a parameter type")
        text = self._advance().text
        if self._accept("<"):
            args = [self._caveat_type()]
            while self._accept(","):
                args.append(self._caveat_type())
            self._expect(">")
            text += "<" + ", ".join(args) + ">"
        return text

    def _role(self) -> RoleDef:
        doc = self._advance().doc
        name = self._name("role", _NAME_RE, frozenset())
        self._expect("{")
        items: list[tuple[str, str]] = []
        spans: list[Span] = []
        while not self._accept("}"):
            definition = self._name("definition", _TYPE_RE, _SPICEDB_KEYWORDS)
            self._expect(".")
            member = self._name("permission", _NAME_RE, _RESERVED_MEMBER)
            items.append((definition.text, member.text))
            spans.append(definition.span)
            if not self._accept(","):
                self._expect("}")
                break
        return RoleDef(name.text, tuple(items), doc=doc, span=name.span, item_spans=tuple(spans))
