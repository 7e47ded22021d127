"""The demo's step runner: each step's result is a dataclass, kept in `state.json` between runs.

A step whose key (a digest of its inputs) matches its last successful run, and whose outputs still
exist, is reused instead of run again; a failure names its step. Results are written with their
`to_dict()` and read back with `from_dict()`; a record that no longer reads (an older layout) is run
again.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, Self, TypeVar, cast

from aik import storage
from aik.context import Context
from aik.errors import AikError

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

log = logging.getLogger("demo")

STATE_FILE = "state.json"


class StepResult(Protocol):
    """What a step returns: a dataclass that writes and reads its JSON form."""

    def to_dict(self) -> dict[str, Any]: ...

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self: ...


R = TypeVar("R", bound=StepResult)


class Record:
    """Mixin for flat result dataclasses: `asdict` out, keyword arguments in."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready."""
        return asdict(cast("DataclassInstance", self))  # mixed into dataclasses only

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        """Read back what `to_dict` wrote."""
        return cls(**data)


class StepFailed(AikError):
    """A demo step failed: the message names the step and the reason."""

    def __init__(self, step: str, reason: str) -> None:
        self.step = step
        super().__init__(f"step '{step}' failed: {reason}")


@dataclass
class StepRecord:
    """One step's outcome in this run: its key, how long it took, whether it was reused, its result."""

    key: str
    seconds: float
    result: StepResult
    reused: bool = False

    def to_dict(self) -> dict[str, Any]:
        """The state file's record."""
        return {
            "key": self.key,
            "seconds": self.seconds,
            "result": self.result.to_dict(),
            "reused": self.reused,
        }


@dataclass
class StepRunner:
    """The demo's state directory, the records of earlier runs, and this run's steps."""

    ctx: Context
    directory: Path
    state: dict[str, Any] = field(default_factory=dict)
    steps: dict[str, StepRecord] = field(default_factory=dict)

    @classmethod
    def open(cls, ctx: Context, fresh: bool = False) -> StepRunner:
        """Load the state of earlier runs (none when `fresh`)."""
        directory = ctx.settings.workspace / "demo"
        directory.mkdir(parents=True, exist_ok=True)
        state_path = directory / STATE_FILE
        state: dict[str, Any] = {}
        if state_path.exists() and not fresh:
            try:
                state = json.loads(state_path.read_text())
            except json.JSONDecodeError:
                log.warning("ignoring an unreadable %s; every step runs again", state_path)
        return cls(ctx, directory, state)

    def save(self) -> None:
        """Persist the records of the steps that succeeded."""
        self.state.update({name: rec.to_dict() for name, rec in self.steps.items()})
        storage.write_text(str(self.directory / STATE_FILE), json.dumps(self.state, indent=2) + "\n")

    def _reusable(
        self, name: str, key: str | None, kind: type[R], still_valid: Callable[[R], bool]
    ) -> R | None:
        previous = self.state.get(name)
        if key is None or not previous or previous.get("key") != key:
            return None
        try:
            result = kind.from_dict(previous["result"])
        except (KeyError, TypeError, ValueError):
            log.info("step %s: the earlier result does not read any more; running again", name)
            return None
        return result if still_valid(result) else None

    def step(
        self,
        name: str,
        key: str | None,
        kind: type[R],
        run: Callable[[], R],
        still_valid: Callable[[R], bool] = lambda _: True,
    ) -> R:
        """Run a step (or reuse its last result when its key matches and its outputs still exist)."""
        reused = self._reusable(name, key, kind, still_valid)
        if reused is not None and key is not None:
            log.info("step %s: reusing the result of an earlier run (same inputs)", name)
            self.steps[name] = StepRecord(key, self.state[name]["seconds"], reused, reused=True)
            return reused
        log.info("step %s: starting", name)
        start = time.monotonic()
        try:
            result = run()
        except StepFailed:
            raise
        except AikError as exc:
            raise StepFailed(name, str(exc)) from exc
        except Exception as exc:
            log.exception("step %s crashed", name)
            raise StepFailed(name, f"{type(exc).__name__}: {exc}") from exc
        seconds = time.monotonic() - start
        log.info("step %s: done in %.1f s", name, seconds)
        self.steps[name] = StepRecord(key or "", seconds, result)
        self.save()
        return result


def key(*parts: object) -> str:
    """A short digest of a step's inputs."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def exists(*uris: str) -> bool:
    """Whether every URI still exists."""
    return all(storage.exists(u) for u in uris)
