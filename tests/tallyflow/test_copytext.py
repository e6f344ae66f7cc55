"""COPY text rows written without a connection are byte-equal to psycopg's `write_row`, and
what a real COPY stores from them reads back as the values written."""

from __future__ import annotations

import datetime as dt
import itertools
from decimal import Decimal as D

import psycopg
import pytest
from psycopg._copy_base import TextFormatter  # NOTE: the reference only; the code never uses it
from psycopg.adapt import Transformer

from tallyflow.core.copytext import copy_field, copy_row
from tallyflow.core.db import to_libpq_url

HOSTILE_TEXT = [
    "",
    "plain",
    "tab\there",
    "new\nline",
    "cr\rlf\r\n",
    "back\\slash",
    "\\N",
    "\\.",
    "\b\f\v",
    "\\\\t",
    'json {"a": "b\\"c", "n": "\\n"}',
    "ünïcødé ✓ 漢字 🚀",
    "null \\0 byte-free",
    *"\\\b\t\n\v\f\r",  # each escaped character alone
]
DECIMALS = [
    D(0),
    D("-0"),
    D("0.00"),
    D("-12.3400"),
    D("1E+3"),
    D("1.5E-7"),
    D("123456789012345678901234567890.123456789012"),
    D(10**19),
]
ROWS: list[tuple[object, ...]] = [
    (n, text, d, dt.date(2026, 11, 30), None, True, False)
    for n, (text, d) in enumerate(zip(HOSTILE_TEXT, itertools.cycle(DECIMALS)))
] + [(-(2**62), None, None, dt.date(1, 1, 1), "x", False, None)]


def psycopg_text(row: tuple[object, ...]) -> bytes:
    formatter = TextFormatter(Transformer())
    return bytes(formatter.write_row(row)) + bytes(formatter.end())


@pytest.mark.parametrize("row", ROWS)
def test_rows_are_the_bytes_psycopg_writes(row: tuple[object, ...]) -> None:
    assert copy_row(row).encode() == psycopg_text(row)


def test_a_real_copy_stores_the_values(database_url: str) -> None:
    with psycopg.connect(to_libpq_url(database_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "CREATE TEMP TABLE t (n bigint, s text, d numeric, day date, x text, b boolean,"
            " c boolean)"
        )
        with cur.copy("COPY t FROM STDIN") as copy:
            copy.write("".join(copy_row(r) for r in ROWS).encode())
        cur.execute("SELECT * FROM t ORDER BY n")
        stored = cur.fetchall()
    assert len(stored) == len(ROWS)
    assert {r[0]: r for r in stored} == {r[0]: r for r in ROWS}


def test_values_without_a_copy_form_are_refused() -> None:
    with pytest.raises(ValueError, match="non-finite"):
        copy_field(D("NaN"))
    with pytest.raises(ValueError, match="non-finite"):
        copy_field(D("-Infinity"))
    with pytest.raises(TypeError, match="float"):
        copy_field(1.5)
    with pytest.raises(TypeError, match="datetime"):
        copy_field(dt.datetime(2026, 1, 1, tzinfo=dt.UTC))
