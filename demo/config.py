"""What the demo runs (filled from `aik demo`'s arguments)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoConfig:
    """What the demo runs: data and load sizes, seeds, the A/B experiments' size, whether to synth."""

    rows: int = 200_000
    requests: int = 100_000
    seed: int = 7
    connections: int = 2
    #: xgboost seed of the model swapped in during the load (the first model uses seed 0).
    swap_seed: int = 1
    #: Share of the requests served before the new model is published (early: loading takes seconds).
    swap_at: float = 0.05
    #: Fresh requests of each A/B experiment of the closed loop (0: no A/B step).
    ab_requests: int = 50_000
    synth: bool = True
    fresh: bool = False
