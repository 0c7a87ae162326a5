"""Providers: where the data comes from. `simulated` (built in, offline) and `tushare`."""

from __future__ import annotations

from collections.abc import Callable

from neo_cli.config import Settings
from neo_cli.providers.base import Provider, Reply


def build_provider(settings: Settings, pace: Callable[[str], None] | None = None) -> Provider:
    """The provider the settings name. `pace(api)` waits for a call slot: the provider asks
    it before the calls it makes on its own (the trading calendar)."""
    name = settings.values["provider"]["name"]
    timeout = settings.values["fast"]["call_timeout"]
    provider: Provider
    if name == "simulated":
        from neo_cli.providers.simulated import SimulatedProvider

        provider = SimulatedProvider(
            settings.values["provider.simulated"], settings.rate_limits, call_timeout=timeout
        )
    else:
        from neo_cli.providers.tushare import TushareProvider

        provider = TushareProvider(settings.values["provider.tushare"], call_timeout=timeout)
    if pace is not None:
        provider.pace = pace
    return provider


__all__ = ["Provider", "Reply", "build_provider"]
