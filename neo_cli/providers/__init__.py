"""Providers: where the data comes from. `simulated` (built in, offline) and `tushare`."""

from __future__ import annotations

from neo_cli.config import Settings
from neo_cli.providers.base import Provider, Reply


def build_provider(settings: Settings) -> Provider:
    """The provider the settings name."""
    name = settings.values["provider"]["name"]
    timeout = settings.values["fast"]["call_timeout"]
    if name == "simulated":
        from neo_cli.providers.simulated import SimulatedProvider

        return SimulatedProvider(
            settings.values["provider.simulated"], settings.rate_limits, call_timeout=timeout
        )
    from neo_cli.providers.tushare import TushareProvider

    return TushareProvider(settings.values["provider.tushare"], call_timeout=timeout)


__all__ = ["Provider", "Reply", "build_provider"]
