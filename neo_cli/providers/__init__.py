"""Providers: where the data comes from. `simulated` (built in, offline) and `tushare`, or one
of the user's own: `[provider] name = "package.module:factory"`, where `factory(settings)`
returns a `Provider` (a vendor of one's own, a cache, a benchmark's provider that costs nothing).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable

from neo_cli.config import Settings
from neo_cli.errors import InputError
from neo_cli.providers.base import Provider, Reply


def build_provider(settings: Settings, pace: Callable[[str], None] | None = None) -> Provider:
    """The provider the settings name. `pace(api)` waits for a call slot: the provider asks
    it before the calls it makes on its own (the trading calendar)."""
    name = settings.values["provider"]["name"]
    timeout = settings.values["fast"]["call_timeout"]
    provider: Provider
    if ":" in name:
        try:
            provider = load_factory(name)(settings)
        except ValueError as exc:  # the module went missing since the config was loaded
            raise InputError(f"[provider] name = {name!r}: {exc}") from None
        except Exception as exc:  # noqa: BLE001 - the user's factory: any error is theirs
            raise InputError(
                f"[provider] name = {name!r} failed: {type(exc).__name__}: {exc}"
            ) from None
        if not isinstance(provider, Provider):
            raise InputError(
                f"[provider] name = {name!r} returned {type(provider).__name__}, not a Provider"
            )
    elif name == "simulated":
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


def load_factory(name: str) -> Callable[[Settings], Provider]:
    """The callable 'package.module:factory' names; ValueError saying what is missing."""
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - the user's module: any error is a bad value
        raise ValueError(f"cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    factory = getattr(module, attr, None)
    if not callable(factory):
        raise ValueError(f"{module_name!r} has no callable {attr!r}")
    return factory


__all__ = ["Provider", "Reply", "build_provider", "load_factory"]
