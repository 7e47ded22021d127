"""What the demo runs (filled from `aik demo`'s arguments)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: data size and seed, load size, the swap model's seed, and whether to synth."""

    rows: int = 200_000
    requests: int = 100_000
    seed: int = 7
    connections: int = 2
    #: xgboost seed of the model swapped in during the load (the first model uses seed 0).
    swap_seed: int = 1
    #: Share of the requests served before the new model is published (early: loading takes seconds).
    swap_at: float = 0.05
    synth: bool = True
    fresh: bool = False
