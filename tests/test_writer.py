"""Upserts into a real DuckDB file: idempotent, last copy wins, bad rows quarantined, the qfq view
computed on read; and opening the file when another process holds it."""

from __future__ import annotations

import json
import math
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import pytest
from conftest import locked_by_another_process

from neo_cli.db.database import Database
from neo_cli.db.schema import QUARANTINE, all_ddl, table_ddl
from neo_cli.db.writer import Part, WriteResult, catalog, write
from neo_cli.errors import DatabaseUnavailable
from neo_cli.tasktypes import ADJ_FACTOR, DAILY, DATASETS, INCOME, STOCK_BASIC, Dataset

A, B, C = "000001.SZ", "600000.SH", "830799.BJ"


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(tmp_path / "neo.duckdb")
    database.ensure_schema()
    return database


def save(db: Database, d: Dataset, *parts: Part) -> WriteResult:
    """One flush: the parts in one transaction, as the saver does it."""
    with db.writer() as conn:
        conn.execute("BEGIN TRANSACTION")
        result = write(conn, d, list(parts))
        conn.execute("COMMIT")
    return result


def query(db: Database, sql: str, params: list | None = None) -> list[tuple]:
    with db.reader() as conn:
        return conn.execute(sql, params or []).fetchall()


def bar(code: str, day: str, close, **kw) -> list:
    """A `daily` row in the API's field order; open/high/low/pre_close default to close."""
    v = {
        "ts_code": code,
        "trade_date": day,
        "open": close,
        "high": close,
        "low": close,
        "close": close,
        "pre_close": close,
        "change": 0.0,
        "pct_chg": 0.0,
        "vol": 100.0,
        "amount": 1000.0,
        **kw,
    }
    return [v[f] for f in DAILY.fields]


def patched(row: list, **kw) -> list:
    """`row` with some fields replaced."""
    out = list(row)
    for name, value in kw.items():
        out[DAILY.fields.index(name)] = value
    return out


def bars(unit: str, *rows: list) -> Part:
    return Part(DAILY.fields, list(rows), unit)


def factors(unit: str, *rows: tuple[str, str, float]) -> Part:
    return Part(ADJ_FACTOR.fields, [list(r) for r in rows], unit)


def test_a_table_an_earlier_neo_keyed_is_rebuilt_without_its_key(tmp_path: Path) -> None:
    """Tables made with a PRIMARY KEY (neo until December 2026) lose it at the next start,
    rows and views intact; the writer's upsert goes on replacing, never doubling."""
    import duckdb

    path = tmp_path / "old.duckdb"
    conn = duckdb.connect(str(path))
    ddl = table_ddl(DAILY).replace("\n)", ',\n    PRIMARY KEY ("ts_code", "trade_date")\n)')
    conn.execute(ddl)
    conn.execute(
        "INSERT INTO daily (ts_code, trade_date, close) VALUES "
        "('000001.SZ', DATE '2024-01-02', 10.0), ('000001.SZ', DATE '2024-01-03', 11.0)"
    )
    conn.close()
    db = Database(path)
    db.ensure_schema()
    kinds = {t for (t,) in query(db, "SELECT constraint_type FROM duckdb_constraints()")}
    assert "PRIMARY KEY" not in kinds
    save(db, DAILY, bars("u", bar(A, "20240103", 12.0), bar(A, "20240104", 13.0)))
    assert closes(db) == {(A, "20240102"): 10.0, (A, "20240103"): 12.0, (A, "20240104"): 13.0}
    assert query(db, "SELECT count(*) FROM daily_qfq") == [(3,)]
    db.ensure_schema()  # once: nothing left to rebuild
    assert query(db, "SELECT count(*) FROM daily") == [(3,)]


def closes(db: Database) -> dict[tuple[str, str], float | None]:
    return {
        (code, day.strftime("%Y%m%d")): close
        for code, day, close in query(db, "SELECT ts_code, trade_date, close FROM daily")
    }


# --------------------------------------------------------------------------- schema


def test_schema_creates_every_table_the_view_and_quarantine(db: Database) -> None:
    names = {n for (n,) in query(db, "SELECT table_name FROM information_schema.tables")}
    assert names >= set(DATASETS) | {"daily_qfq", "daily_hfq", QUARANTINE}
    constraints = query(
        db,
        "SELECT constraint_type, constraint_column_names FROM duckdb_constraints() "
        "WHERE table_name = 'daily' ORDER BY 2",
    )  # keys NOT NULL, and no index to maintain: the writer keeps them unique
    assert constraints == [("NOT NULL", ["trade_date"]), ("NOT NULL", ["ts_code"])]
    types = dict(
        query(
            db,
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'daily'",
        )
    )
    assert types["trade_date"] == "DATE" and types["close"] == "DOUBLE"
    assert types["ts_code"] == "VARCHAR"


def test_ensure_schema_twice_is_harmless(db: Database) -> None:
    save(db, DAILY, bars("u", bar(A, "20240102", 10.0)))
    db.ensure_schema()
    assert len(all_ddl()) == len(DATASETS) + 4  # the tables, three views, the quarantine
    assert closes(db) == {(A, "20240102"): 10.0}


# --------------------------------------------------------------------------- upserts


def test_writing_the_same_parts_twice_changes_nothing(db: Database) -> None:
    parts = [
        bars("u1", bar(A, "20240102", 10.0), bar(A, "20240103", 11.0)),
        bars("u2", bar(B, "20240102", 20.0)),
    ]
    first = save(db, DAILY, *parts)
    assert (first.rows, first.replaced, first.quarantined) == (3, 0, 0)
    again = save(db, DAILY, *parts)
    assert (again.rows, again.replaced, again.quarantined) == (3, 3, 0)
    assert query(db, "SELECT count(*) FROM daily") == [(3,)]
    assert closes(db) == {(A, "20240102"): 10.0, (A, "20240103"): 11.0, (B, "20240102"): 20.0}


def test_a_later_copy_replaces_the_saved_one(db: Database) -> None:
    save(db, DAILY, bars("u1", bar(A, "20240102", 10.0), bar(A, "20240103", 11.0)))
    later = save(db, DAILY, bars("u2", bar(A, "20240103", 11.5, vol=7.0), bar(A, "20240104", 12)))
    assert (later.rows, later.replaced) == (2, 1)
    assert closes(db) == {(A, "20240102"): 10.0, (A, "20240103"): 11.5, (A, "20240104"): 12.0}
    assert query(db, "SELECT vol FROM daily WHERE trade_date = DATE '2024-01-03'") == [(7.0,)]


def test_duplicate_keys_in_one_batch_keep_the_last_copy(db: Database) -> None:
    result = save(
        db,
        DAILY,
        bars("u1", bar(A, "20240102", 1.0), bar(A, "20240103", 3.0), bar(A, "20240103", 4.0)),
        bars("u2", bar(A, "20240102", 2.0)),
    )
    assert (result.rows, result.replaced) == (2, 0)
    assert closes(db) == {(A, "20240102"): 2.0, (A, "20240103"): 4.0}


def test_values_survive_exactly(db: Database) -> None:
    tricky = [0.1, 1 / 3, 1e-300, 123456789.123456789, -0.0, 1e16, 2**53 + 1]
    rows = [bar(A, f"202401{i + 10:02d}", v) for i, v in enumerate(tricky)]
    save(db, DAILY, bars("u", *rows))
    got = [c for _, c in sorted(closes(db).items())]
    assert got == [float(v) for v in tricky]


def test_numbers_and_dates_as_text_or_int_are_accepted(db: Database) -> None:
    save(db, DAILY, bars("u", bar(A, 20240102, "10.5", vol=300), bar(A, " 20240103 ", " 11 ")))
    assert closes(db) == {(A, "20240102"): 10.5, (A, "20240103"): 11.0}
    assert query(db, "SELECT vol FROM daily ORDER BY trade_date") == [(300.0,), (100.0,)]


def test_numpy_floats_are_numbers(db: Database) -> None:
    import numpy as np

    result = save(db, DAILY, bars("u", bar(A, "20240102", np.float64(10.5), vol=np.float32(3))))
    assert (result.rows, result.quarantined) == (1, 0)
    assert closes(db) == {(A, "20240102"): 10.5}


def test_nan_and_none_are_stored_as_null(db: Database) -> None:
    result = save(db, DAILY, bars("u", bar(A, "20240102", math.nan, vol=None, amount=math.nan)))
    assert (result.rows, result.quarantined) == (1, 0)
    assert query(db, "SELECT close, open, vol, amount FROM daily") == [(None, None, None, None)]


def test_fields_missing_from_a_reply_are_null_and_extra_fields_are_ignored(db: Database) -> None:
    part = Part(
        ("surprise", "close", "trade_date", "ts_code"),
        [["?", 9.5, "20240102", A], ["?", 8.5, "20240103", A, "overflow"]],
        "u",
    )
    short = Part(("ts_code", "trade_date", "close", "vol"), [[A, "20240104"]], "u2")  # row cut off
    result = save(db, DAILY, part, short)
    assert (result.rows, result.quarantined) == (3, 0)
    got = query(db, "SELECT trade_date, close, open, vol FROM daily ORDER BY trade_date")
    assert got == [
        (date(2024, 1, 2), 9.5, None, None),
        (date(2024, 1, 3), 8.5, None, None),
        (date(2024, 1, 4), None, None, None),
    ]


def test_the_whole_batch_path_builds_the_frame_field_by_field_would() -> None:
    """Parts that sent exactly the dataset's fields are sliced from one array; any other part
    makes the frame field by field. Both give the same frame for the same awkward values."""
    import numpy as np
    import pandas as pd

    from neo_cli.db.writer import _matrix, _staging_frame

    rows = [
        bar(A, "20240102", 10.5, vol=None),
        bar(A, 20240103, "11", amount=math.nan, pct_chg=np.float32(1.5)),
        bar(A, "2024010x", "abc", vol=True),  # a bad date, a word for a number
        bar(B, None, 3),
    ]
    whole = [bars("u1", *rows[:2]), bars("u2", *rows[2:])]
    order = tuple(reversed(DAILY.fields))
    by_field = [Part(order, [r[::-1] for r in p.items], p.unit_id) for p in whole]
    assert _matrix(DAILY, whole) is not None and _matrix(DAILY, by_field) is None
    (fast, fast_typed), (slow, slow_typed) = (
        _staging_frame(DAILY, whole),
        _staging_frame(DAILY, by_field),
    )
    assert fast_typed == slow_typed and "close" not in fast_typed and "vol" in fast_typed
    pd.testing.assert_frame_equal(fast, slow)


def test_an_empty_batch_writes_nothing(db: Database) -> None:
    assert save(db, DAILY) == WriteResult()
    assert save(db, DAILY, bars("u")) == WriteResult()
    assert query(db, "SELECT count(*) FROM daily") == [(0,)]


# --------------------------------------------------------------------------- quarantine


def quarantined(db: Database) -> list[tuple[str, str, dict, str]]:
    return [
        (api, reason, json.loads(payload), unit)
        for api, reason, payload, unit in query(
            db, f"SELECT api, reason, payload, unit_id FROM {QUARANTINE} ORDER BY reason"
        )
    ]


def test_bad_rows_are_quarantined_and_the_good_ones_saved(db: Database) -> None:
    result = save(
        db,
        DAILY,
        bars("good", bar(A, "20240102", 10.0), bar(B, "20240102", 20.0)),
        bars(
            "bad",
            bar(A, "2024-13-45", 10.0),
            bar(A, "abc", 10.0),
            bar(A, "20240230", 10.0),  # no such day
            patched(bar(A, "20240105", 10.0), close="x"),
            bar(None, "20240105", 10.0),
            bar("   ", "20240105", 10.0),
            bar(A, None, 10.0),
            patched(bar(C, "20240108", 10.0), close="n/a", open="y"),
        ),
    )
    assert (result.rows, result.quarantined) == (2, 8)
    assert len(result.set_aside) == 8
    assert (A, "abc", "bad date trade_date=abc") in result.set_aside
    assert ("", "20240105", "missing ts_code") in result.set_aside
    assert closes(db) == {(A, "20240102"): 10.0, (B, "20240102"): 20.0}
    got = quarantined(db)
    assert [(api, reason, unit) for api, reason, _, unit in got] == [
        ("daily", "bad date trade_date=2024-13-45", "bad"),
        ("daily", "bad date trade_date=20240230", "bad"),
        ("daily", "bad date trade_date=abc", "bad"),
        ("daily", "bad number close=x", "bad"),
        ("daily", "bad number open=y; bad number close=n/a", "bad"),
        ("daily", "missing trade_date", "bad"),
        ("daily", "missing ts_code", "bad"),
        ("daily", "missing ts_code", "bad"),
    ]
    payload = got[3][2]
    assert payload["close"] == "x" and payload["ts_code"] == A
    assert payload["trade_date"] == "20240105"
    assert set(payload) == set(DAILY.fields)


def test_a_bad_copy_never_deletes_the_saved_row(db: Database) -> None:
    save(db, DAILY, bars("u1", bar(A, "20240102", 10.0)))
    result = save(db, DAILY, bars("u2", patched(bar(A, "20240102", 1.0), close="garbage")))
    assert (result.rows, result.replaced, result.quarantined) == (0, 0, 1)
    assert closes(db) == {(A, "20240102"): 10.0}


def test_quarantined_rows_do_not_move_the_watermark(db: Database) -> None:
    late_and_bad = patched(bar(A, "20240109", 1.0), vol="x")
    result = save(db, DAILY, bars("u", bar(A, "20240102", 10.0), late_and_bad))
    assert result.watermarks == {A: "20240102"}


def test_a_truncated_date_is_quarantined(db: Database) -> None:
    result = save(db, DAILY, bars("u", bar(A, "2024011", 10.0)))
    assert (result.rows, result.quarantined) == (0, 1)
    assert closes(db) == {}


# --------------------------------------------------------------------------- what a write reports


def test_watermarks_are_the_last_date_per_symbol(db: Database) -> None:
    result = save(
        db,
        DAILY,
        bars("u1", bar(A, "20240103", 1), bar(A, "20240105", 1), bar(A, "20240102", 1)),
        bars("u2", bar(B, "20231229", 1)),
    )
    assert result.watermarks == {A: "20240105", B: "20231229"}
    assert result.symbols == []


def test_stock_basic_returns_the_symbols(db: Database) -> None:
    rows = [
        [A, "000001", "平安银行", "深圳", "银行", "主板", "SZSE", "L", "19910403", None, "S"],
        [B, "600000", "浦发银行", "上海", "银行", "主板", "SSE", "D", "19991110", "20240301", "N"],
    ]
    result = save(db, STOCK_BASIC, Part(STOCK_BASIC.fields, rows, "sb"))
    assert result.rows == 2
    assert result.watermarks == {}
    assert sorted(result.symbols) == [
        (A, "平安银行", "L", "19910403", None),
        (B, "浦发银行", "D", "19991110", "20240301"),
    ]
    assert query(db, "SELECT name, delist_date FROM stock_basic WHERE ts_code = ?", [B]) == [
        ("浦发银行", date(2024, 3, 1))
    ]


def statement(code: str, ann: str, end: str, flag: str, revenue) -> list:
    v = {
        "ts_code": code,
        "ann_date": ann,
        "f_ann_date": ann,
        "end_date": end,
        "report_type": "1",
        "comp_type": "1",
        "end_type": "4",
        "update_flag": flag,
        "total_revenue": revenue,
    }
    return [v.get(f) for f in INCOME.fields]


def test_each_version_of_a_statement_is_its_own_row(db: Database) -> None:
    result = save(
        db,
        INCOME,
        Part(
            INCOME.fields,
            [
                statement(A, "20240320", "20231231", "0", 100.0),
                statement(A, "20240320", "20231231", "1", 101.0),  # a correction the same day
                statement(A, "20240420", "20240331", "0", 30.0),
                # The same version twice: the last copy wins.
                statement(A, "20240420", "20240331", "0", 31.0),
            ],
            "inc",
        ),
    )
    assert (result.rows, result.quarantined) == (3, 0)
    assert result.watermarks == {A: "20240420"}
    assert query(
        db, "SELECT end_date, update_flag, total_revenue FROM income ORDER BY end_date, update_flag"
    ) == [
        (date(2023, 12, 31), "0", 100.0),
        (date(2023, 12, 31), "1", 101.0),
        (date(2024, 3, 31), "0", 31.0),
    ]


def test_a_statement_without_its_update_flag_is_quarantined(db: Database) -> None:
    result = save(
        db, INCOME, Part(INCOME.fields, [statement(A, "20240320", "20231231", None, 1)], "inc")
    )
    assert (result.rows, result.quarantined) == (0, 1)
    assert quarantined(db)[0][1] == "missing update_flag"


def test_catalog_reads_back_what_the_database_holds(db: Database) -> None:
    save(db, DAILY, bars("u1", bar(A, "20240105", 1), bar(B, "20240102", 1)))
    save(db, DAILY, bars("u2", bar(A, "20240103", 1)))  # an older range later: no regression
    save(db, ADJ_FACTOR, factors("f", (A, "20240105", 1.0)))
    save(
        db,
        STOCK_BASIC,
        Part(("ts_code", "name", "list_status", "list_date"), [[A, "x", "L", "19910403"]], "sb"),
    )
    with db.reader() as conn:
        watermarks, symbols, rows = catalog(conn, list(DATASETS.values()))
    assert watermarks["daily"] == {A: "20240105", B: "20240102"}
    assert watermarks["adj_factor"] == {A: "20240105"}
    assert watermarks["income"] == {}
    assert "stock_basic" not in watermarks
    assert symbols == [(A, "x", "L", "19910403", None)]
    assert rows == {
        "stock_basic": 1,
        "daily": 3,
        "adj_factor": 1,
        "income": 0,
        "balancesheet": 0,
        "cashflow": 0,
    }


# --------------------------------------------------------------------------- the qfq view


def test_daily_qfq_against_a_hand_computed_case(db: Database) -> None:
    save(
        db,
        DAILY,
        bars(
            "d",
            bar(A, "20240102", 10.0, open=9.0, high=10.5, low=8.8, pre_close=9.9),
            bar(A, "20240103", 11.0),
            bar(A, "20240104", 12.1, vol=555.0, amount=6666.0),
            # B has bars but no factors: it cannot be adjusted, yet its bar stays (null prices).
            bar(B, "20240102", 20.0),
        ),
    )
    save(
        db,
        ADJ_FACTOR,
        factors(
            "f",
            (A, "20240102", 1.0),
            (A, "20240103", 1.0),
            (A, "20240104", 1.1),
            # A suspension day: a factor row, no bar -> no qfq row.
            (A, "20240105", 1.1),
            # C has factors but no bars.
            (C, "20240102", 2.0),
        ),
    )
    got = query(
        db,
        "SELECT ts_code, strftime(trade_date, '%Y%m%d'), open, high, low, close, "
        "pre_close, vol, amount, adj_factor, latest_factor "
        "FROM daily_qfq ORDER BY ts_code, trade_date",
    )
    assert [(code, day) for code, day, *_ in got] == [
        (A, "20240102"),
        (A, "20240103"),
        (A, "20240104"),
        (B, "20240102"),
    ]
    d1, d2, d3, b = (row[2:] for row in got)
    assert b == (None, None, None, None, None, 100.0, 1000.0, None, None)
    approx = pytest.approx
    assert d1 == approx(
        (9.0 / 1.1, 10.5 / 1.1, 8.8 / 1.1, 10.0 / 1.1, 9.9 / 1.1, 100.0, 1000.0, 1.0, 1.1)
    )
    assert d2 == approx((10.0, 10.0, 10.0, 10.0, 10.0, 100.0, 1000.0, 1.0, 1.1))
    assert d3 == approx((12.1, 12.1, 12.1, 12.1, 12.1, 555.0, 6666.0, 1.1, 1.1))


def test_a_bar_whose_factor_is_missing_takes_the_last_one_before_it(db: Database) -> None:
    """Factors with gaps (a late publication, a day the API skipped): every bar of `daily` is
    in both views, each with the factor in force that day."""
    save(
        db,
        DAILY,
        bars(
            "d",
            bar(A, "20240101", 8.0),  # before any factor: kept, not adjustable
            bar(A, "20240102", 10.0),
            bar(A, "20240103", 10.0),  # no factor this day: 20240102's holds
            bar(A, "20240104", 20.0),
            bar(A, "20240105", 20.0),  # newer than the newest factor
        ),
    )
    save(db, ADJ_FACTOR, factors("f", (A, "20240102", 1.0), (A, "20240104", 2.0)))
    qfq = query(
        db, "SELECT strftime(trade_date, '%Y%m%d'), close, adj_factor FROM daily_qfq ORDER BY 1"
    )
    assert qfq == [
        ("20240101", None, None),
        ("20240102", 5.0, 1.0),
        ("20240103", 5.0, 1.0),
        ("20240104", 20.0, 2.0),
        ("20240105", 20.0, 2.0),
    ]
    hfq = query(db, "SELECT strftime(trade_date, '%Y%m%d'), close FROM daily_hfq ORDER BY 1")
    assert hfq == [
        ("20240101", None),
        ("20240102", 10.0),
        ("20240103", 10.0),
        ("20240104", 40.0),
        ("20240105", 40.0),
    ]
    assert query(db, "SELECT count(*) FROM daily") == [(5,)]


def test_daily_qfq_follows_a_new_factor_without_rewriting_bars(db: Database) -> None:
    save(db, DAILY, bars("d", bar(A, "20240102", 10.0), bar(A, "20240103", 10.0)))
    save(db, ADJ_FACTOR, factors("f", (A, "20240102", 1.0), (A, "20240103", 1.0)))
    assert query(db, "SELECT close FROM daily_qfq ORDER BY trade_date") == [(10.0,), (10.0,)]
    save(db, ADJ_FACTOR, factors("g", (A, "20240104", 2.0)))  # a dividend after the last bar
    assert query(db, "SELECT close FROM daily_qfq ORDER BY trade_date") == [(5.0,), (5.0,)]


# --------------------------------------------------------------------------- opening the file


def test_reader_waits_for_another_process_to_release_the_file(db: Database) -> None:
    save(db, DAILY, bars("u", bar(A, "20240102", 10.0)))
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        time.sleep(seconds)

    with locked_by_another_process(db.path, hold=0.6) as proc:
        with db.reader(wait=20, sleep=sleep) as conn:
            assert conn.execute("SELECT count(*) FROM daily").fetchone() == (1,)
        assert proc.wait(timeout=30) == 0
    assert slept, "the reader had to wait"
    assert slept[0] == 0.02  # then backing off, doubling up to 0.2 s
    assert all(b == min(2 * a, 0.2) for a, b in zip(slept, slept[1:], strict=False))
    assert not db.read_wanted.exists()  # its request to the writer is withdrawn


READER = """
import sys, time
from pathlib import Path
from neo_cli.db.database import Database
t = time.monotonic()
with Database(Path(sys.argv[1])).reader(wait=20) as conn:
    n = conn.execute("SELECT count(*) FROM daily").fetchone()[0]
print(n, round(time.monotonic() - t, 3), flush=True)
"""


def test_a_writer_holding_the_file_across_flushes_lets_a_reader_in(db: Database) -> None:
    """Back-to-back flushes keep the file open (hold 60 s), yet `neo query`'s reader gets in:
    it asks, and the writer lets go at its next flush and waits for it."""
    save(db, DAILY, bars("u", bar(A, "20240102", 10.0)))
    with db.held(60) as conn:
        conn.execute("SELECT 1")
    reader = subprocess.Popen(
        [sys.executable, "-c", READER, str(db.path)], stdout=subprocess.PIPE, text=True
    )
    flushes = 0
    try:
        while reader.poll() is None and flushes < 5000:
            try:
                with db.held(60) as conn:
                    conn.execute("SELECT count(*) FROM daily").fetchone()
                flushes += 1
            except DatabaseUnavailable:
                time.sleep(0.01)  # the reader is in: the writer retries, as a flush does
            time.sleep(0.002)
        out, _ = reader.communicate(timeout=30)
    finally:
        db.let_go()
    assert reader.returncode == 0
    count, waited = out.split()
    assert count == "1" and float(waited) < 5, out


def test_reader_gives_up_with_one_line_after_the_wait(db: Database) -> None:
    with locked_by_another_process(db.path) as proc:
        started = time.monotonic()
        with pytest.raises(DatabaseUnavailable) as info, db.reader(wait=0.3):
            pass
        assert time.monotonic() - started >= 0.3
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"database {db.path} is locked by another program (")
        assert message.endswith(f"pid {proc.pid})")
        # The writer does not wait: the saver retries on its own schedule.
        with pytest.raises(DatabaseUnavailable, match="locked by another program"), db.writer():
            pass


def test_reader_of_a_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DatabaseUnavailable) as info, Database(tmp_path / "x.duckdb").reader():
        pass
    assert str(info.value) == f"database {tmp_path / 'x.duckdb'} does not exist yet: nothing saved"


@pytest.mark.parametrize("content", [b"\x00garbage\xff" * 1000, b"not a database at all", b""])
def test_a_corrupt_file_is_named_as_such(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "neo.duckdb"
    path.write_bytes(content)
    database = Database(path)
    expected = f"database {path} is not a valid DuckDB file (corrupt, or another kind of file)"
    for opening in (database.writer, database.reader):
        with pytest.raises(DatabaseUnavailable) as info, opening():
            pass
        assert str(info.value) == expected
    with pytest.raises(DatabaseUnavailable, match="not a valid DuckDB file"):
        database.ensure_schema()
    assert path.read_bytes() == content  # never overwritten


def test_a_directory_in_the_files_place(tmp_path: Path) -> None:
    path = tmp_path / "neo.duckdb"
    path.mkdir()
    with pytest.raises(DatabaseUnavailable) as info:
        Database(path).ensure_schema()
    message = str(info.value)
    assert message.startswith(f"database {path} could not be opened: ")
    assert "\n" not in message
