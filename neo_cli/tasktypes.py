"""The data neo keeps: one `Dataset` per API interface and table, and the CLI's task types.

A task type is what a user asks for (`daily_qfq`); a dataset is what one download task fetches
and one table stores (`daily`, `adj_factor`). An interface is what a call names: usually the
dataset's own, but `income_vip` & co. fill the statements' tables for the whole market at once.
Forward-adjusted bars are a view over two datasets, so `daily_qfq` enqueues both.
"""

from __future__ import annotations

from dataclasses import dataclass

from neo_cli.errors import InputError

# Column types are DuckDB's. Field names are the API's, unchanged.
VARCHAR, DATE, DOUBLE = "VARCHAR", "DATE", "DOUBLE"


@dataclass(frozen=True)
class Dataset:
    """One API interface and the table it fills."""

    api: str  # interface name, also the table name and the rate-limit key
    columns: tuple[tuple[str, str], ...]  # (field, DuckDB type), in the API's order
    keys: tuple[str, ...]  # one row per distinct key
    date_field: str | None  # the field start_date/end_date filter on; None = no range
    row_cap: int  # most rows the API returns for one call
    per_symbol: bool = True  # one ts_code per call

    @property
    def table(self) -> str:
        return self.api

    @property
    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    def column_type(self, field: str) -> str:
        return dict(self.columns)[field]


def _cols(spec: str) -> tuple[tuple[str, str], ...]:
    """'a:D b c:V' -> (('a', DATE), ('b', DOUBLE), ('c', VARCHAR)); DOUBLE is the default."""
    kinds = {"D": DATE, "V": VARCHAR, "": DOUBLE}
    out = []
    for token in spec.split():
        name, _, kind = token.partition(":")
        out.append((name, kinds[kind]))
    return tuple(out)


_STATEMENT_HEAD = (
    "ts_code:V ann_date:D f_ann_date:D end_date:D report_type:V comp_type:V end_type:V"
)
# A statement is published, then may be revised: each version is its own row.
_STATEMENT_KEYS = ("ts_code", "end_date", "report_type", "ann_date", "f_ann_date", "update_flag")

STOCK_BASIC = Dataset(
    api="stock_basic",
    columns=_cols(
        "ts_code:V symbol:V name:V area:V industry:V market:V exchange:V list_status:V "
        "list_date:D delist_date:D is_hs:V"
    ),
    keys=("ts_code",),
    date_field=None,
    row_cap=6000,
    per_symbol=False,
)
DAILY = Dataset(
    api="daily",
    columns=_cols("ts_code:V trade_date:D open high low close pre_close change pct_chg vol amount"),
    keys=("ts_code", "trade_date"),
    date_field="trade_date",
    row_cap=6000,
)
ADJ_FACTOR = Dataset(
    api="adj_factor",
    columns=_cols("ts_code:V trade_date:D adj_factor"),
    keys=("ts_code", "trade_date"),
    date_field="trade_date",
    row_cap=6000,
)
INCOME = Dataset(
    api="income",
    columns=_cols(
        _STATEMENT_HEAD + " basic_eps diluted_eps total_revenue revenue oper_cost "
        "operate_profit total_profit income_tax n_income n_income_attr_p update_flag:V"
    ),
    keys=_STATEMENT_KEYS,
    date_field="ann_date",
    row_cap=5000,
)
BALANCESHEET = Dataset(
    api="balancesheet",
    columns=_cols(
        _STATEMENT_HEAD + " total_share money_cap accounts_receiv inventories "
        "total_cur_assets fix_assets total_assets total_cur_liab total_liab "
        "total_hldr_eqy_exc_min_int total_liab_hldr_eqy update_flag:V"
    ),
    keys=_STATEMENT_KEYS,
    date_field="ann_date",
    row_cap=5000,
)
CASHFLOW = Dataset(
    api="cashflow",
    columns=_cols(
        _STATEMENT_HEAD + " net_profit c_fr_sale_sg n_cashflow_act n_cashflow_inv_act "
        "n_cash_flows_fnc_act n_incr_cash_cash_equ c_cash_equ_beg_period "
        "c_cash_equ_end_period free_cashflow update_flag:V"
    ),
    keys=_STATEMENT_KEYS,
    date_field="ann_date",
    row_cap=5000,
)

DATASETS: dict[str, Dataset] = {
    d.api: d for d in (STOCK_BASIC, DAILY, ADJ_FACTOR, INCOME, BALANCESHEET, CASHFLOW)
}
STATEMENTS = ("income", "balancesheet", "cashflow")
# The whole market's statements in one call (accounts with 5,000 points): the same fields and
# parameters, `ts_code` optional, paged with `offset`. Each fills its statement's table.
VIP = {f"{api}_vip": api for api in STATEMENTS}
VIP_OF = {api: vip for vip, api in VIP.items()}
INTERFACES = (*DATASETS, *VIP)  # every interface neo calls for data; each has a rate limit


@dataclass(frozen=True)
class TaskType:
    """What `neo enqueue --task-type` accepts."""

    name: str
    datasets: tuple[str, ...]
    aliases: tuple[str, ...] = ()

    @property
    def needs_symbols(self) -> bool:
        """Planned from the symbol list (the catalog `stock_basic` fills)."""
        return any(DATASETS[d].per_symbol for d in self.datasets)


TASK_TYPES: tuple[TaskType, ...] = (
    TaskType("stock_basic", ("stock_basic",)),
    TaskType("daily", ("daily",), ("stock_daily", "daily_bar_none")),
    TaskType("adj_factor", ("adj_factor",)),
    TaskType("daily_qfq", ("daily", "adj_factor"), ("daily_bar_qfq",)),
    TaskType("income", ("income",)),
    TaskType("balancesheet", ("balancesheet",)),
    TaskType("cashflow", ("cashflow",)),
)
_BY_NAME = {name: t for t in TASK_TYPES for name in (t.name, *t.aliases)}


def task_type(name: str) -> TaskType:
    """Resolve a task type or alias; raise InputError naming what is allowed."""
    found = _BY_NAME.get(name.strip().lower())
    if found is None:
        allowed = ", ".join(
            t.name + (f" ({', '.join(t.aliases)})" if t.aliases else "") for t in TASK_TYPES
        )
        raise InputError(f"unknown task type {name!r}; allowed: {allowed}")
    return found


def table_of(api: str) -> str:
    """The table an interface fills (`income_vip` -> `income`)."""
    return VIP.get(api, api)


def interfaces_of(table: str) -> tuple[str, ...]:
    """The interfaces that fill `table` (`income` -> `income`, `income_vip`)."""
    return (table, VIP_OF[table]) if table in VIP_OF else (table,)


def dataset(api: str) -> Dataset:
    """The dataset an interface fills: its fields, keys and table."""
    return DATASETS[table_of(api)]
