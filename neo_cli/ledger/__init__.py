"""The ledger: every unit of work from enqueue to saved or dead, and the catalog readers use.

    sqlite.py  the ledger itself, a SQLite file beside the DuckDB file (`Ledger`)
    remote.py  the ledger as a download machine sees it: its writes travel as ledger tasks on
               the slow queue to the machine that keeps the file (`RemoteLedger`)

Both answer the calls a download makes (`tests/test_ledger_contract.py` runs them on each).
"""

from neo_cli.ledger.sqlite import LIVE, STATES, VIP_REFUSED, Ledger, UnitRecord, connect

__all__ = ["LIVE", "STATES", "VIP_REFUSED", "Ledger", "UnitRecord", "connect"]
