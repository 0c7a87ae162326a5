"""Idempotent upserts: one dataset's buffered frames into its table, inside the caller's
transaction.

Every value arrives as the API sent it and is staged as text, then typed in SQL with
`try_strptime`/`try_cast`, so a bad value marks its row instead of failing the batch: rows with a
missing key or an unparseable value go to `_quarantine` with the reason, the rest are saved.
Within a batch the last copy of a key wins. The upsert is `DELETE … USING` + `INSERT`, not
`ON CONFLICT`: DuckDB runs the latter as a merge that falls to ~2k rows/s once updated keys are
scattered through history, while delete+insert stays fast either way — and it needs no primary
key, whose index cost more than the writes (neo_cli/db/schema.py).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from typing import Any

import duckdb
import numpy as np
import pandas as pd

from neo_cli.db.schema import QUARANTINE
from neo_cli.tasktypes import DATE, DOUBLE, Dataset


@dataclass
class Part:
    """One download's rows, waiting in the saver's buffer."""

    fields: tuple[str, ...]
    items: list[list[Any]]
    unit_id: str


@dataclass
class WriteResult:
    rows: int = 0  # rows written (new or replacing an older copy)
    replaced: int = 0  # of those, how many replaced a row already there
    quarantined: int = 0
    set_aside: list[tuple[str, str, str]] = field(default_factory=list)  # (code, date, reason)
    watermarks: dict[str, str] = field(default_factory=dict)  # ts_code -> last date saved
    symbols: list[tuple[str, str, str, str, str]] = field(default_factory=list)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, float):
        return None if math.isnan(value) else repr(float(value))  # np.float64 reprs oddly
    return str(value)


def _column(parts: list[Part], name: str) -> list[Any]:
    """One field's raw values across every part, None where a part lacks the field."""
    values: list[Any] = []
    for part in parts:
        try:
            i = part.fields.index(name)
        except ValueError:
            values.extend([None] * len(part.items))
            continue
        get = itemgetter(i)
        try:
            values.extend(map(get, part.items))
        except IndexError:  # a short row: the missing value is None, the check sees the rest
            values.extend(row[i] if i < len(row) else None for row in part.items)
    return values


def _matrix(d: Dataset, parts: list[Part]) -> np.ndarray | None:
    """Every part's rows as one 2-D array of objects, a column per field of `d`, when every
    part sent exactly `d.fields` and no row is short: numpy slices it into columns in C.
    None otherwise, and the columns are gathered field by field (`_column`)."""
    fields = tuple(d.fields)
    if not parts or any(p.fields != fields for p in parts):
        return None
    items = [row for p in parts for row in p.items]
    if not items or any(len(row) != len(fields) for row in items):
        return None
    try:
        matrix = np.array(items, dtype=object)
    except ValueError:  # values that are themselves sequences of different lengths
        return None
    return matrix if matrix.shape == (len(items), len(fields)) else None


def _floats(values: Sequence[Any]) -> pd.arrays.FloatingArray | None:
    """A nullable float column (NaN and None become NULL), or None when a value is not a
    number. numpy converts the list in C; pandas' own `pd.array(values, "Float64")` accepts
    the same values, but looks at each in Python, five times slower."""
    try:
        data = np.array(values, dtype=np.float64)
    except (TypeError, ValueError, OverflowError):
        return None
    if data.ndim != 1:  # a value that was itself a list
        return None
    return pd.arrays.FloatingArray(data, np.isnan(data))


def _texts(values: list[Any]) -> list[str | None]:
    """Values as text, None where missing; strings, nearly all of them, as they are."""
    return [v if v.__class__ is str else _text(v) for v in values]


def _staging_frame(d: Dataset, parts: list[Part]) -> tuple[pd.DataFrame, set[str]]:
    """The rows as a DataFrame, and the names of the numeric columns already typed.

    Numbers usually arrive as numbers: they go in as a nullable float column at once (NaN and
    None become NULL). A column holding anything else goes in as text, and SQL finds the bad
    values row by row. Dates and strings always go in as text."""
    columns: dict[str, Any] = {}
    typed: set[str] = set()
    matrix = _matrix(d, parts)
    for i, (name, kind) in enumerate(d.columns):
        values = _column(parts, name) if matrix is None else matrix[:, i]
        if kind == DOUBLE:
            numbers = _floats(values)
            if numbers is not None:
                columns[name] = numbers
                typed.add(name)
                continue
        columns[name] = pd.array(_texts(list(values)), dtype=object)
    frame = pd.DataFrame(columns)
    frame["_unit"] = np.repeat(
        np.array([p.unit_id for p in parts], dtype=object), [len(p.items) for p in parts]
    )
    frame["_seq"] = np.arange(len(frame))
    return frame, typed


def _typed(name: str, kind: str, ready: bool = False) -> str:
    q = f'"{name}"'
    if ready:
        return q
    if kind == DATE:
        # strptime alone reads '2024011' as 2024-01-01: insist on all eight digits.
        return (
            f"CASE WHEN regexp_full_match(trim({q}), '\\d{{8}}') "
            f"THEN try_strptime(trim({q}), '%Y%m%d')::DATE END"
        )
    if kind == DOUBLE:
        return f"try_cast({q} AS DOUBLE)"
    return q


def _problem(name: str, kind: str, is_key: bool, ready: bool = False) -> str:
    q = f'"{name}"'
    checks = []
    if is_key:
        blank = "" if ready else f" OR trim({q}) = ''"
        checks.append(f"WHEN {q} IS NULL{blank} THEN 'missing {name}'")
    if kind in (DATE, DOUBLE) and not ready:
        what = "date" if kind == DATE else "number"
        checks.append(
            f"WHEN {q} IS NOT NULL AND {_typed(name, kind)} IS NULL "
            f"THEN 'bad {what} {name}=' || {q}"
        )
    return f"CASE {' '.join(checks)} END" if checks else ""


def _set_aside(conn: duckdb.DuckDBPyConnection, d: Dataset, result: WriteResult) -> None:
    """Quarantine the bad rows of `_staged` with their values as the API sent them, read back
    from `_raw` by sequence number: only the bad rows need that payload, and nearly every row
    is good."""
    payload = "json_object(" + ", ".join(f"'{n}', r.\"{n}\"" for n in d.fields) + ")::VARCHAR"
    bad = "FROM _staged s JOIN _raw r USING (_seq) WHERE s._reason <> ''"
    result.quarantined = conn.execute(
        f"INSERT INTO {QUARANTINE} SELECT ?, s._reason, {payload}, s._unit, now() {bad}",
        [d.api],
    ).fetchall()[0][0]
    day = f"coalesce(r.\"{d.date_field}\"::VARCHAR, '')" if d.date_field else "''"
    result.set_aside = conn.execute(
        f"SELECT coalesce(r.ts_code::VARCHAR, ''), {day}, s._reason {bad} ORDER BY _seq"
    ).fetchall()


def write(conn: duckdb.DuckDBPyConnection, d: Dataset, parts: list[Part]) -> WriteResult:
    """Upsert `parts` into `d.table` on `conn` (the caller owns the transaction)."""
    result = WriteResult()
    frame, ready = _staging_frame(d, parts)
    if frame.empty:
        return result
    conn.register("_raw", frame)
    try:
        typed = ", ".join(f'{_typed(n, k, n in ready)} AS "{n}"' for n, k in d.columns)
        problems = [p for p in (_problem(n, k, n in d.keys, n in ready) for n, k in d.columns) if p]
        conn.execute(
            f"CREATE OR REPLACE TEMP TABLE _staged AS SELECT _seq, _unit, {typed}, "
            f"concat_ws('; ', {', '.join(problems)}) AS _reason FROM _raw"
        )
        # Read to the end: DuckDB 2 will not unregister while a result is half-read.
        [(bad,)] = conn.execute("SELECT count(*) FROM _staged WHERE _reason <> ''").fetchall()
        if bad:
            _set_aside(conn, d, result)
    finally:
        conn.unregister("_raw")

    keys = ", ".join(f'"{k}"' for k in d.keys)
    cols = ", ".join(f'"{n}"' for n in d.fields)
    good = "FROM _staged WHERE _reason = ''"
    match = " AND ".join(f't."{k}" = g."{k}"' for k in d.keys)
    # Every key of the batch goes, then the last copy of each comes back: one statement each,
    # straight from the staging table (a table of the good rows cost a statement more).
    result.replaced = conn.execute(
        f"DELETE FROM {d.table} AS t USING (SELECT DISTINCT {keys} {good}) AS g WHERE {match}"
    ).fetchone()[0]
    result.rows = conn.execute(
        f"INSERT INTO {d.table} ({cols}) SELECT {cols} {good} "
        f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _seq DESC) = 1"
    ).fetchone()[0]

    if d.date_field:
        result.watermarks = dict(conn.execute(_watermarks_sql(d, good)).fetchall())
    if d.api == "stock_basic":
        latest = f"QUALIFY row_number() OVER (PARTITION BY {keys} ORDER BY _seq DESC) = 1"
        result.symbols = conn.execute(f"{_symbols_sql(good)} {latest}").fetchall()
    return result  # _staged stays until the next write replaces it: a DROP is a statement


def catalog(conn: duckdb.DuckDBPyConnection, datasets: list[Dataset]):
    """What the database holds, for rebuilding the catalog: (watermarks, symbols, rows)."""
    watermarks: dict[str, dict[str, str]] = {}
    rows: dict[str, int] = {}
    symbols: list[tuple[str, str, str, str, str]] = []
    for d in datasets:
        rows[d.api] = conn.execute(f"SELECT count(*) FROM {d.table}").fetchone()[0]
        if d.date_field:
            watermarks[d.api] = dict(conn.execute(_watermarks_sql(d, f"FROM {d.table}")).fetchall())
        if d.api == "stock_basic":
            symbols = conn.execute(_symbols_sql(f"FROM {d.table}")).fetchall()
    return watermarks, symbols, rows


# What the catalog keeps, read from a flush's good rows (`write`) or a whole table (`catalog`).
def _watermarks_sql(d: Dataset, source: str) -> str:
    """Each symbol's newest date ('YYYYMMDD') in `source` ("FROM … [WHERE …]")."""
    return f"SELECT ts_code, strftime(max(\"{d.date_field}\"), '%Y%m%d') {source} GROUP BY ts_code"


def _symbols_sql(source: str) -> str:
    """(ts_code, name, list_status, list_date, delist_date) of the stock list in `source`."""
    return (
        "SELECT ts_code, name, list_status, strftime(list_date, '%Y%m%d'), "
        f"strftime(delist_date, '%Y%m%d') {source}"
    )
