"""A unit of work: one download task's worth of one API interface.

The planner makes units, the ledger records them, the fast queue carries them, and the saver
reports them saved. A unit's id is also its download task's id.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Unit:
    api: str
    params: dict[str, Any]  # the API's own parameters, e.g. ts_code, start_date, end_date
    codes: tuple[str, ...] = ()  # the symbols it covers ("already queued" is per api + code)
    batch: str = ""
    priority: int = 0
    id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def to_dict(self) -> dict[str, Any]:
        return {
            "api": self.api,
            "params": dict(self.params),
            "codes": list(self.codes),
            "batch": self.batch,
            "priority": self.priority,
            "id": self.id,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Unit:
        return cls(**{**d, "codes": tuple(d.get("codes", ()))})

    def describe(self) -> str:
        """`daily 000001.SZ 20200101..20201231` — for logs, errors and `neo task`."""
        codes = ",".join(self.codes) if len(self.codes) <= 3 else f"{len(self.codes)} symbols"
        p = self.params
        if "start_date" in p or "end_date" in p:
            span = f"{p.get('start_date', '')}..{p.get('end_date', '')}"
        else:
            span = " ".join(f"{k}={v}" for k, v in p.items() if k != "ts_code")
        return " ".join(x for x in (self.api, codes, span) if x)


def new_batch_id() -> str:
    return "b" + uuid.uuid4().hex[:11]
