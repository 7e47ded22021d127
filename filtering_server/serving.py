"""What one server serves at a time: the champion and an experiment's challengers, each a whole release.

A `Serving` is immutable and replaced as one reference (`ModelHolder.serving`), so a request that
reads it once is answered wholly by one state: the arms, their models and the experiment that splits
traffic between them (`aik.experiments.assign` of the request's BidID). Without an experiment the
champion, the live release, answers everything. `plan` reads what the parameters ask for: the
experiment's arms' releases, or the live release (or the original three parameters).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from aik import experiments, releases
from aik.errors import ArtifactNotFound
from aik.experiments import CHAMPION, Experiment, ExperimentError
from aik.params import ParameterStore
from filtering_server.model import ModelSources, ServedModel


@dataclass(frozen=True)
class ArmModel:
    """One arm: its name, the release that answers it (the model version without a release), its model."""

    arm: str
    release: str
    share: float
    model: ServedModel


@dataclass(frozen=True)
class Serving:
    """The arms being served and the experiment splitting traffic between them (None: the champion only)."""

    experiment: Experiment | None
    arms: tuple[ArmModel, ...]
    champion: ArmModel = field(init=False)
    by_name: Mapping[str, ArmModel] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        by_name = {a.arm: a for a in self.arms}
        object.__setattr__(self, "by_name", by_name)
        object.__setattr__(self, "champion", by_name[CHAMPION])

    @classmethod
    def single(cls, model: ServedModel) -> Serving:
        """The champion alone (no experiment)."""
        return cls(None, (ArmModel(CHAMPION, release_name(model), 1.0, model),))

    @property
    def experiment_name(self) -> str | None:
        """The running experiment's name, or None."""
        return None if self.experiment is None else self.experiment.name

    def pick(self, request: Any) -> ArmModel:
        """The arm that answers `request`: by the salted hash of its BidID during an experiment."""
        if self.experiment is None:
            return self.champion
        return self.by_name[experiments.assign(request.bidId or "", self.experiment)]

    def sources(self) -> dict[str, tuple[ModelSources, tuple[str, ...]]]:
        """Each arm's (sources, fingerprints): what `plan` is compared with."""
        return {a.arm: (a.model.sources, a.model.fingerprints) for a in self.arms}

    def describe(self) -> str:
        """One line: the experiment and each arm's release and share."""
        arms = ", ".join(f"{a.arm} {a.release} ({a.share:.0%})" for a in self.arms)
        return f"experiment {self.experiment.name}: {arms}" if self.experiment else f"no experiment: {arms}"


def release_name(model: ServedModel) -> str:
    """The release id of a model (its version when it was loaded from the three original parameters)."""
    return model.sources.release_id or model.version


@dataclass(frozen=True)
class Plan:
    """What the parameters ask to serve: the experiment (None: none running) and each arm's sources."""

    experiment: Experiment | None
    arms: Mapping[str, ModelSources]
    shares: Mapping[str, float]


def plan(store: ParameterStore) -> Plan:
    """The running experiment's arms' releases, or the live release alone (AikError naming what is wrong)."""
    experiment = experiments.active(store)
    if experiment is None:
        return Plan(None, {CHAMPION: ModelSources.from_store(store)}, {CHAMPION: 1.0})
    root = releases.releases_root(store)
    arms = {}
    for a in experiment.arms:
        try:
            release = releases.read_release(experiments.manifest_uri(root, a.release))
        except (ArtifactNotFound, releases.ReleaseError) as exc:  # a verdict on the experiment
            raise ExperimentError(f"experiment {experiment.name}, arm {a.arm}: {exc}") from exc
        arms[a.arm] = ModelSources.from_release(release)
    return Plan(experiment, arms, {a.arm: a.share for a in experiment.arms})
