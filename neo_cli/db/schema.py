"""Tables as the API names them, keyed as PRODUCT.md says, plus the `daily_qfq` view."""

from __future__ import annotations

from neo_cli.tasktypes import DATASETS, Dataset

QUARANTINE = "_quarantine"


def table_ddl(d: Dataset) -> str:
    cols = ",\n    ".join(
        f'"{name}" {kind}' + (" NOT NULL" if name in d.keys else "") for name, kind in d.columns
    )
    keys = ", ".join(f'"{k}"' for k in d.keys)
    return f"CREATE TABLE IF NOT EXISTS {d.table} (\n    {cols},\n    PRIMARY KEY ({keys})\n)"


# Forward-adjusted prices depend on the newest factor, so they are computed on read and are
# never stale: price x factor / latest factor of that symbol, on the dates `daily` has (the
# factor table also has rows on suspension days, which have no bar).
QFQ_VIEW = """
CREATE OR REPLACE VIEW daily_qfq AS
WITH latest AS (
    SELECT ts_code, arg_max(adj_factor, trade_date) AS latest_factor
    FROM adj_factor GROUP BY ts_code
)
SELECT d.ts_code, d.trade_date,
       d.open      * a.adj_factor / l.latest_factor AS open,
       d.high      * a.adj_factor / l.latest_factor AS high,
       d.low       * a.adj_factor / l.latest_factor AS low,
       d.close     * a.adj_factor / l.latest_factor AS close,
       d.pre_close * a.adj_factor / l.latest_factor AS pre_close,
       d.vol, d.amount, a.adj_factor, l.latest_factor
FROM daily d
JOIN adj_factor a ON a.ts_code = d.ts_code AND a.trade_date = d.trade_date
JOIN latest l ON l.ts_code = d.ts_code
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
    return [table_ddl(d) for d in DATASETS.values()] + [QFQ_VIEW, QUARANTINE_DDL]
