"""Client-side rate limiters, one per API interface: an in-process backend and a shared one."""

from neo_cli.limits.base import Limiter, SlotTooFar

__all__ = ["Limiter", "SlotTooFar"]
