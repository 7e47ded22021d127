"""What every subcommand receives: the settings and the parameter store they select."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from aik import aws
from aik.params import ParameterStore, open_store
from aik.settings import Settings


@dataclass
class Context:
    """Settings plus the parameter store (opened lazily, so `--help` never touches AWS).

    A region in the settings becomes the region of every AWS client the process creates (the S3
    client of `aik.storage` included), since artifacts are read by URI without a context.
    """

    settings: Settings

    def __post_init__(self) -> None:
        if self.settings.region:
            aws.use_region(self.settings.region)

    @cached_property
    def params(self) -> ParameterStore:
        """The parameter store of the chosen backend."""
        return open_store(self.settings)
