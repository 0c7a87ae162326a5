"""The provider interface: one call to one API interface, in the Tushare Pro protocol's terms.

A provider knows nothing of queues, limiters or databases. It makes one call and either returns
a `Reply` or raises one of the `ProviderError` classes from `neo_cli.errors`, already classified
(transient, rate-limited, permanent, auth), so the caller decides what to do without reading text.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from neo_cli.errors import (
    AuthError,
    PermanentError,
    ProviderError,
    RateLimited,
    TransientError,
)

if TYPE_CHECKING:
    from neo_cli.limits.base import Slot


@dataclass(frozen=True)
class Reply:
    """What one call returned: the API's field names and rows of values.

    Dates are 'YYYYMMDD' strings, numbers are floats, missing values are None, exactly as the
    API sends them. `has_more` is the API's own flag; callers must not rely on it alone."""

    fields: tuple[str, ...]
    items: list[list[Any]] = field(default_factory=list)
    has_more: bool = False

    def __len__(self) -> int:
        return len(self.items)

    def frame(self):
        """The rows as a pandas DataFrame of the values as sent."""
        import pandas as pd

        return pd.DataFrame(self.items, columns=list(self.fields), dtype=object)


class Provider(ABC):
    """Makes API calls. Thread-safe: fifty workers share one instance."""

    name: str = "provider"

    def pace(self, api: str) -> None:  # noqa: B027 - replaced by the caller's limiters
        """Wait for a call slot for `api`; asked before every call the provider makes on its
        own (the calendar), so those spend the same budget as everything else."""

    @abstractmethod
    def call(
        self,
        api: str,
        params: Mapping[str, Any],
        fields: Sequence[str],
        slot: Slot | None = None,
    ) -> Reply:
        """Call interface `api` with `params`, asking for `fields`; raise a ProviderError.
        `slot`: the limiter's slot for the call, checked (`Slot.leave`) just before the
        request goes out; SlotMissed means nothing was sent."""

    def trading_days(self, start: str, end: str) -> list[str] | None:
        """Trading days from `start` to `end` ('YYYYMMDD', inclusive), or None when unknown.
        The planner uses it to skip ranges with nothing to fetch (weekends, holidays)."""
        return None

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections."""


# The API's own error texts. Classification goes by message, because its codes vary.
_RATE_MINUTE = re.compile(r"每分钟最多访问")
_RATE_HOUR = re.compile(r"每小时最多访问")
_RATE_DAY = re.compile(r"每天最多访问")
_BAD_TOKEN = re.compile(r"token不对|token无效|请确认token|token.*不正确")
_NO_PERMISSION = re.compile(r"没有(访问)?该接口的权限|没有接口访问权限|权限不足")

RATE_LIMIT_MESSAGE = (
    "抱歉，您每分钟最多访问该接口{limit}次，"
    "权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
)
BAD_TOKEN_MESSAGE = "您的token不对，请确认。"
NO_PERMISSION_MESSAGE = (
    "抱歉，您没有访问该接口的权限，权限的具体详情访问：https://tushare.pro/document/1?doc_id=108。"
)


def classify(api: str, message: str) -> ProviderError:
    """Turn the `msg` of a reply with `code != 0` into the right error class."""
    if _RATE_MINUTE.search(message):
        return RateLimited(message, api, "minute")
    if _RATE_HOUR.search(message):
        return RateLimited(message, api, "hour")
    if _RATE_DAY.search(message):
        return RateLimited(message, api, "day")
    if _BAD_TOKEN.search(message):
        return AuthError(message, api, "token")
    if _NO_PERMISSION.search(message):
        return AuthError(message, api, "interface")
    if re.search(r"系统(繁忙|错误)|服务器|稍后|timeout|超时", message, re.IGNORECASE):
        return TransientError(message, api)
    return PermanentError(message, api)
