"""The expression language: parsing, checking, compiling to bound SQL, refusing the rest."""

from __future__ import annotations

import re

import duckdb
import pytest

from pipelines.definitions.expression import (
    BOOL,
    NUMBER,
    TEXT,
    ExpressionError,
    check_condition,
    columns,
    compile_sql,
    parse,
)

SCHEMA = {"a": NUMBER, "b": NUMBER, "c": NUMBER, "name": TEXT, "flag": BOOL, "other": BOOL}


def _eval(text: str, **values) -> object:
    """Evaluate a compiled expression in DuckDB over one row of ``values``."""
    check_condition(parse(text), SCHEMA) if _is_condition(text) else None
    params: list[object] = []
    sql = compile_sql(parse(text), params)
    con = duckdb.connect()
    row = {"a": None, "b": None, "c": None, "name": None, "flag": None, "other": None, **values}
    con.execute(
        "create table t as select ?::integer as a, ?::integer as b, ?::integer as c, ?::varchar as name, "
        "?::boolean as flag, ?::boolean as other",
        [row["a"], row["b"], row["c"], row["name"], row["flag"], row["other"]],
    )
    return con.execute(f"select {sql} from t", params).fetchall()[0][0]


def _is_condition(text: str) -> bool:
    return not text.startswith("=")


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("a >= 90", {"a": 90}, True),
        ("a >= 90", {"a": 89}, False),
        ("a >= 90", {}, None),  # unknown stays unknown; the missing policy decides
        ("a = 1 or b = 1 and c = 1", {"a": 1, "b": 0, "c": 0}, True),  # and binds tighter
        ("(a = 1 or b = 1) and c = 1", {"a": 1, "b": 0, "c": 0}, False),
        ("2 * (a - b) >= a", {"a": 10, "b": 5}, True),  # a drop of exactly 50%
        ("2 * (a - b) >= a", {"a": 10, "b": 6}, False),
        ("a - b >= 5", {"a": 12, "b": 7}, True),
        ("a / b > 1", {"a": 3, "b": 2}, True),  # true division: 3 / 2 = 1.5
        ("-a < -1", {"a": 2}, True),
        ("name in ('completed', 'transferred')", {"name": "transferred"}, True),
        ("name not in ('completed', 'transferred')", {"name": "dropped_out"}, True),
        ("name IS NULL", {}, True),
        ("name is not null", {"name": "x"}, True),
        ("not flag", {"flag": False}, True),
        ("NOT flag AND Other", {"flag": False, "other": True}, True),
        ("flag = true", {"flag": True}, True),
        ("name = 'O''Brien'", {"name": "O'Brien"}, True),
        ("a in (-1, 2)", {"a": -1}, True),
        ("a <> 3", {"a": 4}, True),
    ],
)
def test_expressions_evaluate_as_written(text, values, expected):
    assert _eval(text, **values) is expected


def test_literals_are_bound_parameters_not_sql_text():
    params: list[object] = []
    sql = compile_sql(parse("name = 'x'' or 1=1 --' and a > 5"), params)
    assert params == ["x' or 1=1 --", 5]
    assert "--" not in sql and "1=1" not in sql
    assert sql == '(("name" = ?) AND ("a" > ?))'


def test_columns_lists_every_column_read():
    assert columns(parse("a > 1 and (name in ('x') or flag is null)")) == {"a", "name", "flag"}


@pytest.mark.parametrize(
    ("text", "message", "position"),
    [
        ("1; drop table x", "unexpected character ';'", 2),
        ("a = 1; drop table mart_episodes", "unexpected character ';'", 6),
        ("lower(name) = 'x'", "function calls are not allowed (lower)", 1),
        ("a in (select 1)", "'in (...)' takes literal values only", 7),
        ("(select a from t) > 1", "subqueries are not allowed", 2),
        ('name = "x"', "double quotes are not allowed", 8),
        ("name = 'x", "unterminated string", 8),
        ("a = 1 -- comment", "comments are not allowed", 7),
        ("a = 1 /* c */", "comments are not allowed", 7),
        ("a == 1", "unexpected '='", 4),
        ("a >", "unexpected end of expression", 4),
        ("", "empty expression", 1),
        ("a = 1 b = 2", "unexpected 'b'", 7),
        ("a not 1", "unexpected 'not'", 3),
        ("a in (b)", "'in (...)' takes literal values only", 7),
        ("name::int > 1", "unexpected character ':'", 5),
        ("a = 1 union select 1", "unexpected 'union'", 7),
        ("a = `x`", "unexpected character '`'", 5),
    ],
)
def test_bad_syntax_is_refused_with_its_position(text, message, position):
    with pytest.raises(ExpressionError) as info:
        check_condition(parse(text), SCHEMA)
    assert message in str(info.value)
    assert info.value.position == position


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nope > 1", "unknown column 'nope' at position 1"),
        ("a > 1 and drop_table", "unknown column 'drop_table' at position 11"),
        ("a", "a condition must be true/false"),
        ("name > 1", "'>' compares text with number"),
        ("a and flag", "'and' needs boolean operands"),
        ("name + 1 > 2", "'+' needs number operands"),
        ("not a", "'not' needs boolean operands"),
        ("name in (1, 2)", "'in' compares text with number"),
    ],
)
def test_unknown_columns_and_type_errors_are_refused(text, message):
    with pytest.raises(ExpressionError, match=re.escape(message)):
        check_condition(parse(text), SCHEMA)


def test_error_is_a_user_error_with_one_line():
    from pipelines.errors import UserError

    with pytest.raises(UserError) as info:
        parse("a = 1; drop table x")
    assert "\n" not in str(info.value)
