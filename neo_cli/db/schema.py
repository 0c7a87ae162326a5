"""Tables as the API names them, keyed as PRODUCT.md says, plus the adjusted-price views."""

from __future__ import annotations

from neo_cli.tasktypes import DATASETS, Dataset

QUARANTINE = "_quarantine"


def table_ddl(d: Dataset, name: str | None = None) -> str:
    """The table of `d` (under `name`, for a rebuild). Its keys are NOT NULL but not a PRIMARY
    KEY: the one writer (the flusher, turn-taking through a lock file) deletes every key of a
    batch before inserting the batch's last copy of each, in one transaction, so a key is never
    doubled. DuckDB's index for a primary key made every write maintain it and every
    checkpoint rewrite it: at 10 million bars a 50,000-row update flush and its checkpoint
    took 2.8-3x as long keyed, and the full-market file was 1,265 MB keyed, 621 MB without."""
    cols = ",\n    ".join(
        f'"{col}" {kind}' + (" NOT NULL" if col in d.keys else "") for col, kind in d.columns
    )
    return f"CREATE TABLE IF NOT EXISTS {name or d.table} (\n    {cols}\n)"


def keyed_tables(conn) -> list[Dataset]:
    """Tables an earlier neo made with a PRIMARY KEY, to be rebuilt without it."""
    rows = conn.execute(
        "SELECT DISTINCT table_name FROM duckdb_constraints() WHERE constraint_type = 'PRIMARY KEY'"
    ).fetchall()
    names = {name for (name,) in rows}
    return [d for d in DATASETS.values() if d.table in names]


def unkey(conn, d: Dataset) -> None:
    """Rebuild `d.table` without its primary key, in one transaction (on any error it stays
    as it was: keyed tables still work, only slower)."""
    cols = ", ".join(f'"{col}"' for col, _ in d.columns)
    conn.execute("BEGIN TRANSACTION")
    try:
        conn.execute(table_ddl(d, f"{d.table}__unkeyed"))
        conn.execute(f"INSERT INTO {d.table}__unkeyed ({cols}) SELECT {cols} FROM {d.table}")
        conn.execute(f"DROP TABLE {d.table}")
        conn.execute(f"ALTER TABLE {d.table}__unkeyed RENAME TO {d.table}")
        conn.execute("COMMIT")
    except BaseException:
        conn.execute("ROLLBACK")
        raise


# Adjusted prices are computed on read from raw bars and factors, so they are never stale.
# Every bar of `daily` is in both views (a missing or late factor must not make a bar vanish):
# a bar takes its own day's factor, else the symbol's last factor before it (Tushare's own
# `pro_bar` carries the factor forward the same way); a bar older than any factor has null
# adjusted prices. The factor table also has rows on suspension days, which have no bar.
#   daily_qfq (forward-adjusted):  price x factor / the symbol's latest factor
#   daily_hfq (back-adjusted):     price x factor
FACTOR_VIEW = """
CREATE OR REPLACE VIEW _daily_factor AS
SELECT d.ts_code, d.trade_date, d.open, d.high, d.low, d.close, d.pre_close, d.vol, d.amount,
       a.adj_factor
FROM daily d ASOF LEFT JOIN adj_factor a
    ON a.ts_code = d.ts_code AND d.trade_date >= a.trade_date
"""

QFQ_VIEW = """
CREATE OR REPLACE VIEW daily_qfq AS
WITH latest AS (
    SELECT ts_code, arg_max(adj_factor, trade_date) AS latest_factor
    FROM adj_factor GROUP BY ts_code
)
SELECT f.ts_code, f.trade_date,
       f.open      * f.adj_factor / l.latest_factor AS open,
       f.high      * f.adj_factor / l.latest_factor AS high,
       f.low       * f.adj_factor / l.latest_factor AS low,
       f.close     * f.adj_factor / l.latest_factor AS close,
       f.pre_close * f.adj_factor / l.latest_factor AS pre_close,
       f.vol, f.amount, f.adj_factor, l.latest_factor
FROM _daily_factor f
LEFT JOIN latest l ON l.ts_code = f.ts_code
"""

HFQ_VIEW = """
CREATE OR REPLACE VIEW daily_hfq AS
SELECT ts_code, trade_date,
       open * adj_factor AS open, high * adj_factor AS high, low * adj_factor AS low,
       close * adj_factor AS close, pre_close * adj_factor AS pre_close,
       vol, amount, adj_factor
FROM _daily_factor
"""

QUARANTINE_DDL = f"""
CREATE TABLE IF NOT EXISTS {QUARANTINE} (
    api VARCHAR NOT NULL,
    reason VARCHAR NOT NULL,
    payload VARCHAR NOT NULL,
    unit_id VARCHAR,
    quarantined_at TIMESTAMP NOT NULL
)
"""


def all_ddl() -> list[str]:
    return [table_ddl(d) for d in DATASETS.values()] + [
        FACTOR_VIEW,
        QFQ_VIEW,
        HFQ_VIEW,
        QUARANTINE_DDL,
    ]
