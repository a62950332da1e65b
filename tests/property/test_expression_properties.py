"""Generated expressions: DuckDB's result of the compiled SQL equals a direct evaluation of the
syntax tree with SQL's three-valued logic (a second implementation of the semantics)."""

from __future__ import annotations

import duckdb
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.definitions.expression import (
    Column,
    InList,
    IsNull,
    Literal,
    Unary,
    compile_sql,
    parse,
)

ROW_COLUMNS = ("a", "b")

numbers = st.one_of(
    st.integers(-5, 5).map(str),
    st.sampled_from(ROW_COLUMNS),
)


@st.composite
def arithmetic(draw, depth=2):
    if depth == 0 or draw(st.booleans()):
        return draw(numbers)
    op = draw(st.sampled_from(["+", "-", "*"]))
    return f"({draw(arithmetic(depth - 1))} {op} {draw(arithmetic(depth - 1))})"


@st.composite
def condition(draw, depth=3):
    kind = draw(st.sampled_from(["cmp", "null", "in"] + (["and", "or", "not"] if depth else [])))
    if kind == "cmp":
        op = draw(st.sampled_from(["=", "!=", "<>", "<", "<=", ">", ">="]))
        return f"{draw(arithmetic())} {op} {draw(arithmetic())}"
    if kind == "null":
        return f"{draw(st.sampled_from(ROW_COLUMNS))} is {draw(st.sampled_from(['', 'not ']))}null"
    if kind == "in":
        values = ", ".join(str(v) for v in draw(st.lists(st.integers(-3, 3), min_size=1, max_size=3)))
        return f"{draw(st.sampled_from(ROW_COLUMNS))} {draw(st.sampled_from(['', 'not ']))}in ({values})"
    if kind == "not":
        return f"not ({draw(condition(depth - 1))})"
    # no parentheses around the operands: precedence is part of what is tested
    return f"{draw(condition(depth - 1))} {kind} {draw(condition(depth - 1))}"


def reference(node, row):
    """Evaluate the tree in Python with SQL NULL semantics (None = unknown)."""
    if isinstance(node, Literal):
        return node.value
    if isinstance(node, Column):
        return row[node.name]
    if isinstance(node, Unary):
        v = reference(node.operand, row)
        if v is None:
            return None
        return (not v) if node.op == "not" else -v
    if isinstance(node, IsNull):
        return (reference(node.operand, row) is None) != node.negated
    if isinstance(node, InList):
        v = reference(node.operand, row)
        if v is None:
            return None
        return (v in [x.value for x in node.values]) != node.negated
    left, right = reference(node.left, row), reference(node.right, row)
    if node.op == "and":
        if left is False or right is False:
            return False
        return None if left is None or right is None else True
    if node.op == "or":
        if left is True or right is True:
            return True
        return None if left is None or right is None else False
    if left is None or right is None:
        return None
    return {
        "+": lambda: left + right, "-": lambda: left - right, "*": lambda: left * right,
        "=": lambda: left == right, "!=": lambda: left != right, "<": lambda: left < right,
        "<=": lambda: left <= right, ">": lambda: left > right, ">=": lambda: left >= right,
    }[node.op]()


_CON = duckdb.connect()


@settings(max_examples=150, deadline=None)
@given(condition(), st.one_of(st.none(), st.integers(-4, 4)), st.one_of(st.none(), st.integers(-4, 4)))
def test_compiled_sql_agrees_with_the_reference_semantics(text, a, b):
    tree = parse(text)
    params: list[object] = []
    sql = compile_sql(tree, params)
    got = _CON.execute(
        f"select {sql} from (select ?::bigint as a, ?::bigint as b)", [*params, a, b]
    ).fetchall()[0][0]
    assert got == reference(tree, {"a": a, "b": b}), (text, a, b, sql)
