"""One exponential back-off for everything that waits and tries again."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    """Delays `base, base*factor, …` capped at `cap`; `jitter` draws each uniformly from
    [0, delay] (full jitter) so a crowd of retries spreads out instead of returning together.

    `next()` gives the delay before the next try and advances; `reset()` after a success."""

    base: float
    cap: float
    factor: float = 2.0
    jitter: bool = False
    rng: random.Random = field(default_factory=random.Random)
    tries: int = 0

    def delay(self, attempt: int) -> float:
        """The delay before try `attempt` (1-based), without advancing."""
        d = min(self.cap, self.base * self.factor ** max(0, attempt - 1))
        return self.rng.uniform(0, d) if self.jitter else d

    def next(self) -> float:
        self.tries += 1
        return self.delay(self.tries)

    def reset(self) -> None:
        self.tries = 0
