"""What every subcommand receives: the settings and the parameter store they select."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from aik.params import ParameterStore, open_store
from aik.settings import Settings


@dataclass
class Context:
    """Settings plus the parameter store (opened lazily, so `--help` never touches AWS)."""

    settings: Settings

    @cached_property
    def params(self) -> ParameterStore:
        """The parameter store of the chosen backend."""
        return open_store(self.settings)
