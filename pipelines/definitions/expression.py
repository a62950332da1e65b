"""The small expression language of success definitions.

Grammar (keywords case-insensitive)::

    expr       := and_expr ("or" and_expr)*
    and_expr   := not_expr ("and" not_expr)*
    not_expr   := "not" not_expr | comparison
    comparison := sum [ ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") sum
                      | "is" ["not"] "null"
                      | ["not"] "in" "(" literal ("," literal)* ")" ]
    sum        := product (("+" | "-") product)*
    product    := unary (("*" | "/") unary)*
    unary      := "-" unary | primary
    primary    := NUMBER | 'string' | true | false | null | column | "(" expr ")"

Columns must be columns of ``mart_episodes``; there are no function calls, subqueries,
casts, comments or statement separators. Compilation emits only the parser's own tokens:
column names (checked against the allowed set, then quoted) and ``?`` placeholders for every
literal, whose values travel separately as bound parameters.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipelines.errors import UserError


class ExpressionError(UserError):
    """Bad syntax or an unknown column; ``position`` is the 1-based character offset."""

    def __init__(self, message: str, position: int):
        super().__init__(f"{message} at position {position}")
        self.reason = message
        self.position = position


# ---------------------------------------------------------------------------- tokens

_KEYWORDS = {"and", "or", "not", "in", "is", "null", "true", "false"}
# Bounds that keep hostile text a one-line error (tests/security): the built-in definitions use
# under 60 tokens; nesting deeper than Python's recursion limit, or a number too long to convert,
# would otherwise escape as RecursionError / ValueError.
MAX_TOKENS = 500
MAX_NUMBER_CHARS = 30

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<number>\d+(?:\.\d+)?)
  | (?P<string>'(?:[^']|'')*')
  | (?P<name>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<op><=|>=|!=|<>|=|<|>|\+|-|\*|/|\(|\)|,)
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str  # number, string, name, keyword, op, end
    text: str
    position: int  # 1-based


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    i = 0
    while i < len(text):
        if text.startswith(("--", "/*"), i):
            # harmless once compiled, but a comment in a condition is a sign of SQL pasted in
            raise ExpressionError("comments are not allowed", i + 1)
        match = _TOKEN.match(text, i)
        if match is None:
            char = text[i]
            if char == "'":
                raise ExpressionError("unterminated string", i + 1)
            if char == '"':
                raise ExpressionError('double quotes are not allowed (strings use single quotes)', i + 1)
            raise ExpressionError(f"unexpected character {char!r}", i + 1)
        kind = match.lastgroup or ""
        if kind != "space":
            value = match.group()
            if kind == "name" and value.lower() in _KEYWORDS:
                tokens.append(Token("keyword", value.lower(), i + 1))
            else:
                tokens.append(Token(kind, value, i + 1))
        i = match.end()
        if len(tokens) > MAX_TOKENS:
            raise ExpressionError(f"expression too long (more than {MAX_TOKENS} tokens)", i + 1)
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


# ---------------------------------------------------------------------------- syntax tree


@dataclass(frozen=True)
class Literal:
    value: int | float | str | bool | None
    position: int


@dataclass(frozen=True)
class Column:
    name: str
    position: int


@dataclass(frozen=True)
class Unary:
    op: str  # "not" or "-"
    operand: Node
    position: int


@dataclass(frozen=True)
class Binary:
    op: str  # and, or, =, !=, <, <=, >, >=, +, -, *, /
    left: Node
    right: Node
    position: int


@dataclass(frozen=True)
class IsNull:
    operand: Node
    negated: bool
    position: int


@dataclass(frozen=True)
class InList:
    operand: Node
    values: tuple[Literal, ...]
    negated: bool
    position: int


Node = Literal | Column | Unary | Binary | IsNull | InList

_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">="}


class _Parser:
    def __init__(self, text: str):
        self.tokens = tokenize(text)
        self.i = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        tok = self.tokens[self.i]
        self.i += 1
        return tok

    def accept(self, kind: str, text: str) -> Token | None:
        if self.tok.kind == kind and self.tok.text == text:
            return self.advance()
        return None

    def expect(self, kind: str, text: str) -> Token:
        tok = self.accept(kind, text)
        if tok is None:
            raise ExpressionError(f"expected {text!r}, found {_describe(self.tok)}", self.tok.position)
        return tok

    def parse(self) -> Node:
        if self.tok.kind == "end":
            raise ExpressionError("empty expression", self.tok.position)
        node = self.or_expr()
        if self.tok.kind != "end":
            raise ExpressionError(f"unexpected {_describe(self.tok)}", self.tok.position)
        return node

    def or_expr(self) -> Node:
        node = self.and_expr()
        while tok := self.accept("keyword", "or"):
            node = Binary("or", node, self.and_expr(), tok.position)
        return node

    def and_expr(self) -> Node:
        node = self.not_expr()
        while tok := self.accept("keyword", "and"):
            node = Binary("and", node, self.not_expr(), tok.position)
        return node

    def not_expr(self) -> Node:
        if tok := self.accept("keyword", "not"):
            return Unary("not", self.not_expr(), tok.position)
        return self.comparison()

    def comparison(self) -> Node:
        left = self.sum()
        tok = self.tok
        if tok.kind == "op" and tok.text in _COMPARISONS:
            self.advance()
            op = "!=" if tok.text == "<>" else tok.text
            return Binary(op, left, self.sum(), tok.position)
        if self.accept("keyword", "is"):
            negated = self.accept("keyword", "not") is not None
            self.expect("keyword", "null")
            return IsNull(left, negated, tok.position)
        negated = False
        if tok.kind == "keyword" and tok.text == "not":
            nxt = self.tokens[self.i + 1]
            if nxt.kind == "keyword" and nxt.text == "in":
                self.advance()
                negated = True
            else:
                raise ExpressionError("unexpected 'not' (did you mean 'not in'?)", tok.position)
        if self.accept("keyword", "in"):
            self.expect("op", "(")
            values = [self.literal()]
            while self.accept("op", ","):
                values.append(self.literal())
            self.expect("op", ")")
            return InList(left, tuple(values), negated, tok.position)
        return left

    def literal(self) -> Literal:
        tok = self.tok
        negative = False
        if tok.kind == "op" and tok.text == "-":
            self.advance()
            negative = True
        node = self.primary()
        if not isinstance(node, Literal) or node.value is None or (
            negative and not isinstance(node.value, (int, float))
        ):
            raise ExpressionError("'in (...)' takes literal values only", tok.position)
        if negative:
            return Literal(-node.value, tok.position)  # type: ignore[operator]
        return node

    def sum(self) -> Node:
        node = self.product()
        while self.tok.kind == "op" and self.tok.text in ("+", "-"):
            tok = self.advance()
            node = Binary(tok.text, node, self.product(), tok.position)
        return node

    def product(self) -> Node:
        node = self.unary()
        while self.tok.kind == "op" and self.tok.text in ("*", "/"):
            tok = self.advance()
            node = Binary(tok.text, node, self.unary(), tok.position)
        return node

    def unary(self) -> Node:
        if tok := self.accept("op", "-"):
            return Unary("-", self.unary(), tok.position)
        return self.primary()

    def primary(self) -> Node:
        tok = self.advance()
        if tok.kind == "number":
            if len(tok.text) > MAX_NUMBER_CHARS or not tok.text.replace(".", "").isascii():
                raise ExpressionError("number too long or not written with the digits 0-9", tok.position)
            value = float(tok.text) if "." in tok.text else int(tok.text)
            return Literal(value, tok.position)
        if tok.kind == "string":
            return Literal(tok.text[1:-1].replace("''", "'"), tok.position)
        if tok.kind == "keyword" and tok.text in ("true", "false"):
            return Literal(tok.text == "true", tok.position)
        if tok.kind == "keyword" and tok.text == "null":
            return Literal(None, tok.position)
        if tok.kind == "name":
            if self.tok.kind == "op" and self.tok.text == "(":
                raise ExpressionError(f"function calls are not allowed ({tok.text})", tok.position)
            return Column(tok.text.lower(), tok.position)
        if tok.kind == "op" and tok.text == "(":
            if self.tok.kind == "name" and self.tok.text.lower() in ("select", "with"):
                raise ExpressionError("subqueries are not allowed", self.tok.position)
            node = self.or_expr()
            self.expect("op", ")")
            return node
        raise ExpressionError(f"unexpected {_describe(tok)}", tok.position)


def _describe(tok: Token) -> str:
    return "end of expression" if tok.kind == "end" else repr(tok.text)


def parse(text: str) -> Node:
    """Parse ``text`` into a syntax tree; raise :class:`ExpressionError` on bad syntax."""
    if not isinstance(text, str):
        raise ExpressionError("expected text", 1)
    try:
        return _Parser(text).parse()
    except RecursionError:
        raise ExpressionError("expression nested too deeply", 1) from None


# ---------------------------------------------------------------------------- checking

# Coarse types: enough to refuse "success: phq9_admit" (a number is not a condition) and
# comparisons of text with numbers.
BOOL, NUMBER, TEXT, DATE, NULL = "boolean", "number", "text", "date", "null"


def sql_type_class(duckdb_type: str) -> str:
    t = duckdb_type.upper()
    if t == "BOOLEAN":
        return BOOL
    if t == "TEXT" or t.startswith("VARCHAR"):
        return TEXT
    if t.startswith(("DATE", "TIMESTAMP")):
        return DATE
    return NUMBER


def columns(node: Node) -> set[str]:
    """Every column the expression reads."""
    if isinstance(node, Column):
        return {node.name}
    if isinstance(node, Literal):
        return set()
    if isinstance(node, Unary):
        return columns(node.operand)
    if isinstance(node, Binary):
        return columns(node.left) | columns(node.right)
    return columns(node.operand)


def check(node: Node, schema: Mapping[str, str]) -> str:
    """Check columns and types against ``schema`` (column -> type class); return the type."""
    if isinstance(node, Literal):
        v = node.value
        if v is None:
            return NULL
        if isinstance(v, bool):
            return BOOL
        return TEXT if isinstance(v, str) else NUMBER
    if isinstance(node, Column):
        if node.name not in schema:
            raise ExpressionError(f"unknown column {node.name!r}", node.position)
        return schema[node.name]
    if isinstance(node, Unary):
        inner = check(node.operand, schema)
        want = BOOL if node.op == "not" else NUMBER
        _want(inner, want, node.op, node.position)
        return want
    if isinstance(node, IsNull):
        check(node.operand, schema)
        return BOOL
    if isinstance(node, InList):
        left = check(node.operand, schema)
        for value in node.values:
            _compatible(left, check(value, schema), "in", value.position, value)
        return BOOL
    left, right = check(node.left, schema), check(node.right, schema)
    if node.op in ("and", "or"):
        _want(left, BOOL, node.op, node.position)
        _want(right, BOOL, node.op, node.position)
        return BOOL
    if node.op in ("+", "-", "*", "/"):
        _want(left, NUMBER, node.op, node.position)
        _want(right, NUMBER, node.op, node.position)
        return NUMBER
    literal = node.right if isinstance(node.right, Literal) else node.left
    _compatible(left, right, node.op, node.position, literal if isinstance(literal, Literal) else None)
    return BOOL


def _want(got: str, want: str, op: str, position: int) -> None:
    if got not in (want, NULL):
        raise ExpressionError(f"'{op}' needs {want} operands, got {got}", position)


def _compatible(left: str, right: str, op: str, position: int, literal: Literal | None = None) -> None:
    if NULL in (left, right) or left == right:
        return
    if {left, right} == {DATE, TEXT}:  # '2026-07-01' compared with a date column (literal_problems)
        return
    hint = _type_hint({left, right}, literal)
    raise ExpressionError(f"'{op}' compares {left} with {right}{hint}", position)


def _type_hint(kinds: set[str], literal: Literal | None) -> str:
    """How to write ``literal`` for the other side's type, when that is what went wrong."""
    value = literal.value if literal is not None else None
    if kinds == {BOOL, TEXT} and isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return " (write true or false without quotes)"
    if kinds == {NUMBER, TEXT} and isinstance(value, str) and re.fullmatch(r"\s*-?\d+(\.\d+)?\s*", value):
        return " (write numbers without quotes)"
    if kinds == {DATE, NUMBER} and literal is not None:
        return " (write dates in quotes, as 'YYYY-MM-DD')"
    return ""


def check_condition(node: Node, schema: Mapping[str, str]) -> None:
    """A population or success condition must be boolean."""
    kind = check(node, schema)
    if kind not in (BOOL, NULL):
        raise ExpressionError(f"a condition must be true/false, this expression is a {kind}", 1)


# ---------------------------------------------------------------------------- literal values

_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
_EQUALITY = ("=", "!=")
_NULL_HINT = " (a comparison with null is unknown); write 'is null' or 'is not null'"


@dataclass(frozen=True)
class LiteralProblem:
    """A literal that the column it is compared with can never equal (or that is no date)."""

    text: str  # the comparison as written, e.g. level_group = 'IOP'
    reason: str  # e.g. not an allowed value of level_group; allowed: outpatient, iop, ...
    position: int  # the literal's

    def __str__(self) -> str:
        return f"{self.text}: {self.reason}"


def literal_problems(
    node: Node, schema: Mapping[str, str], values: Mapping[str, Sequence[str]]
) -> list[LiteralProblem]:
    """Every literal of ``node`` that cannot match the column it is compared with, in order.

    Call it on a tree that :func:`check` accepted. ``values``: column -> the values it can hold
    (:mod:`.domains`); a text literal compared with such a column by ``=``, ``!=`` or ``in``
    must be one of them, exactly (SQL's ``=`` is case-sensitive: ``'IOP'`` matches no ``'iop'``).
    A text literal compared with a date column must be a date written ``YYYY-MM-DD`` (DuckDB
    would refuse anything else only when the analysis runs). A comparison with ``null`` is never
    true. Comparisons of a column with another column, or with arithmetic, and ``<``/``>`` on
    text are left alone.
    """
    found: list[LiteralProblem] = []

    def visit(n: Node) -> None:
        if isinstance(n, Unary | IsNull):
            visit(n.operand)
        elif isinstance(n, InList):
            if isinstance(n.operand, Column):
                shown = f"{n.operand.name} {'not ' if n.negated else ''}in ({', '.join(map(_sql, n.values))})"
                for lit in n.values:  # never null: the parser refuses 'in (null)'
                    if reason := _literal_reason(n.operand.name, "in", lit, schema, values):
                        found.append(LiteralProblem(shown, f"{_sql(lit)} is {reason}", lit.position))
            else:
                visit(n.operand)
        elif isinstance(n, Binary):
            pair = _column_and_literal(n)
            if pair is None:
                visit(n.left)
                visit(n.right)
            elif n.op in _COMPARISONS:
                column, lit = pair
                reason = _literal_reason(column.name, n.op, lit, schema, values)
                if reason:
                    shown = (f"{column.name} {n.op} {_sql(lit)}" if n.left is column
                             else f"{_sql(lit)} {n.op} {column.name}")
                    found.append(LiteralProblem(shown, reason, lit.position))

    visit(node)
    return found


def _column_and_literal(node: Binary) -> tuple[Column, Literal] | None:
    if isinstance(node.left, Column) and isinstance(node.right, Literal):
        return node.left, node.right
    if isinstance(node.left, Literal) and isinstance(node.right, Column):
        return node.right, node.left
    return None


def _literal_reason(
    column: str, op: str, lit: Literal, schema: Mapping[str, str], values: Mapping[str, Sequence[str]]
) -> str | None:
    """Why ``column op lit`` can never be true as meant; None when it can."""
    value = lit.value
    if value is None:
        return f"never true{_NULL_HINT}"
    kind = schema.get(column)
    if kind == DATE and isinstance(value, str):
        if not _DATE.match(value) or not _is_date(value):
            return "not a date; write dates as 'YYYY-MM-DD'"
        return None
    allowed = values.get(column)
    if kind != TEXT or not allowed or not isinstance(value, str) or op not in (*_EQUALITY, "in"):
        return None
    if value in allowed:
        return None
    reason = f"not an allowed value of {column}; allowed: {', '.join(allowed)}"
    same_letters = [a for a in allowed if a.lower() == value.strip().lower()]
    guess = same_letters or difflib.get_close_matches(value, list(allowed), n=1, cutoff=0.75)
    if guess:
        reason += f"; did you mean {_sql(Literal(guess[0], 0))}?"
    return reason


def _is_date(text: str) -> bool:
    import datetime as dt

    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _sql(lit: Literal) -> str:
    """``lit`` as it is written in a condition."""
    if lit.value is None:
        return "null"
    if isinstance(lit.value, bool):
        return "true" if lit.value else "false"
    if isinstance(lit.value, str):
        return "'" + lit.value.replace("'", "''") + "'"
    return str(lit.value)


# ---------------------------------------------------------------------------- compiling

_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]*$")


def compile_sql(node: Node, params: list[object]) -> str:
    """DuckDB SQL for ``node``; literal values are appended to ``params`` (``?`` placeholders)."""
    if isinstance(node, Literal):
        if node.value is None:
            return "NULL"
        if isinstance(node.value, bool):
            return "TRUE" if node.value else "FALSE"
        params.append(node.value)
        return "?"
    if isinstance(node, Column):
        # names are checked against the mart's columns before compiling; this guard keeps the
        # compiler safe even if it were called on an unchecked tree
        if not _IDENTIFIER.match(node.name):
            raise ExpressionError(f"bad column name {node.name!r}", node.position)
        return f'"{node.name}"'
    if isinstance(node, Unary):
        inner = compile_sql(node.operand, params)
        return f"(NOT {inner})" if node.op == "not" else f"(- {inner})"
    if isinstance(node, IsNull):
        return f"({compile_sql(node.operand, params)} IS {'NOT ' if node.negated else ''}NULL)"
    if isinstance(node, InList):
        left = compile_sql(node.operand, params)
        items = ", ".join(compile_sql(v, params) for v in node.values)
        return f"({left} {'NOT ' if node.negated else ''}IN ({items}))"
    left = compile_sql(node.left, params)
    right = compile_sql(node.right, params)
    if node.op == "/":
        # true division whatever the operand types and the SQL dialect's integer rules
        return f"(CAST({left} AS DOUBLE) / {right})"
    op = {"and": "AND", "or": "OR"}.get(node.op, node.op)
    return f"({left} {op} {right})"
