"""Zero-downtime model swap: poll the parameters and the artifacts' fingerprints, load, validate, swap.

Every `interval` seconds the watcher reads the three parameters and a fingerprint of each artifact
(S3 ETag, local inode/mtime/size). When anything changed it loads the new model in its own thread,
validates it (`model.load_model`: schema and bundle checks, seven features, a probe set scored in
[0, 1] and identical to xgboost's own predictions) and publishes it by replacing one reference
(`ModelHolder.serving`), which requests read once each: a request is scored wholly by the old or
wholly by the new model. A model that fails is logged with its URI and the old one keeps serving; the
same broken state is not retried until the parameters or artifacts change again.

The same poll reads the experiment parameter (`serving.plan`): during an experiment it loads every
arm's release (reusing models already loaded) and swaps in the whole set at once; one arm that fails
keeps the current set serving. A bad experiment parameter is reported and ignored (the current set
keeps serving); starting, changing or stopping an experiment never interrupts a request.

Any other failure (a throttled or unreachable store, missing credentials, out of file handles, a
corrupt parameter file) is logged once per distinct cause and retried with a doubling delay up to
`max_backoff`; the thread never ends on an exception. `check_age()` says how long ago the parameters
and fingerprints were last read successfully: `health()` reports it and the server sends it as a
StatsD gauge, so a watcher that cannot see new models is visible (and alarmed on in AWS).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from aik.errors import AikError
from aik.experiments import ExperimentError
from aik.params import EXPERIMENT, ParameterStore
from filtering_server.model import DEFAULT_MAX_STRING, ModelSources, ServedModel, fingerprints, load_model
from filtering_server.serving import ArmModel, Plan, Serving, plan, release_name

log = logging.getLogger(__name__)


#: What a poll compares: the experiment, and each arm's sources and fingerprints.
_State = tuple[object, dict[str, tuple[ModelSources, tuple[str, ...]]]]


class ModelHolder:
    """What is being served; replacing `serving` (champion, challengers, experiment) is the atomic swap."""

    def __init__(self, model: ServedModel | None = None) -> None:
        self.serving: Serving | None = None if model is None else Serving.single(model)
        self.swaps = 0

    @property
    def current(self) -> ServedModel | None:
        """The champion's model (the live release's), or None before the first load."""
        serving = self.serving
        return None if serving is None else serving.champion.model

    def swap(self, model: ServedModel) -> None:
        """Serve `model` alone (no experiment) from the next request on."""
        self.install(Serving.single(model))

    def install(self, serving: Serving) -> None:
        """Serve `serving` from the next request on."""
        self.serving = serving
        self.swaps += 1


def describe(model: ServedModel) -> str:
    """One line naming the model: version, what scores it, load time and where it came from."""
    return (
        f"model {model.version} ({model.scorer.describe()}) from "
        f"{'release ' + model.sources.release_id + ' ' if model.sources.release_id else ''}"
        f"{model.sources.model_uri}, loaded in {model.load_seconds:.2f} s at {model.loaded_at_iso}"
    )


class ModelWatcher:
    """Poll for new artifacts and swap them in; never interrupts serving."""

    def __init__(
        self,
        store: ParameterStore,
        holder: ModelHolder,
        *,
        interval: float = 30.0,
        max_string: int = DEFAULT_MAX_STRING,
        on_swap: Callable[[ServedModel], None] | None = None,
        max_backoff: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.holder = holder
        self.interval = interval
        self.max_string = max_string
        self.on_swap = on_swap
        self.max_backoff = max_backoff
        self.rejected: _State | None = None
        self.last_error: str | None = None
        #: Failed checks in a row (the retry delay doubles with each).
        self.failures = 0
        self._clock = clock
        self._last_success: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_initial(self) -> ServedModel:
        """Load the first models (raises `AikError` naming the parameter or URI that failed); the champion's.

        A bad experiment parameter is reported and the live release alone is served.
        """
        try:
            wanted = plan(self.store)
        except ExperimentError as exc:
            self._report(f"ignoring {EXPERIMENT}: {exc}")
            wanted = Plan(None, {"champion": ModelSources.from_store(self.store)}, {"champion": 1.0})
        serving = self._build(wanted, None)
        self._last_success = self._clock()
        self.holder.install(serving)
        for arm in serving.arms:
            log.info("serving %s: %s", arm.arm, describe(arm.model))
        if serving.experiment is not None:
            log.info("serving %s", serving.describe())
        return serving.champion.model

    def _build(self, wanted: Plan, current: Serving | None) -> Serving:
        """The arms of `wanted`, reusing the models of `current` whose sources and files are unchanged."""
        loaded = {(a.model.sources, a.model.fingerprints): a.model for a in (current.arms if current else ())}
        arms = []
        for arm, sources in wanted.arms.items():
            model = next((m for (s, _), m in loaded.items() if s == sources), None)
            if model is None or model.fingerprints != fingerprints(sources):
                model = load_model(sources, max_string=self.max_string)
                loaded[(sources, model.fingerprints)] = model
                if current is not None:
                    log.info("loaded %s for %s", describe(model), arm)
            arms.append(ArmModel(arm, release_name(model), wanted.shares[arm], model))
        return Serving(wanted.experiment, tuple(arms))

    def check_age(self) -> float | None:
        """Seconds since the parameters and fingerprints were last read successfully (None: not watching)."""
        if self._last_success is None or self.interval <= 0:
            return None
        return max(0.0, self._clock() - self._last_success)

    def next_delay(self) -> float:
        """Seconds until the next check: the interval, doubled per failure in a row, at most `max_backoff`."""
        if self.failures == 0:
            return self.interval
        return min(self.interval * 2.0 ** min(self.failures, 30), max(self.max_backoff, self.interval))

    @property
    def alive(self) -> bool:
        """The polling thread is running."""
        return self._thread is not None and self._thread.is_alive()

    def poll_once(self) -> bool:
        """Check once; load, validate and swap if anything changed. True when a new set was swapped in."""
        try:
            wanted = plan(self.store)
            state: _State = (
                wanted.experiment,
                {arm: (sources, fingerprints(sources)) for arm, sources in wanted.arms.items()},
            )
        except ExperimentError as exc:  # a verdict on the parameter, not a failure to retry with backoff
            self._succeeded()
            self._report(f"ignoring {EXPERIMENT}, the current models keep serving: {exc}")
            return False
        except Exception as exc:  # any failure here is the store's or storage's, retried with backoff
            self._fail(f"cannot check for a new model: {_cause(exc)}")
            return False
        self._succeeded()
        current = self.holder.serving
        if current is not None and state == (current.experiment, current.sources()):
            if self.last_error is not None and self.last_error.startswith(f"ignoring {EXPERIMENT}"):
                self.last_error = None
            return False
        if state == self.rejected:
            return False
        try:
            serving = self._build(wanted, current)
        except AikError as exc:
            what = "model" if wanted.experiment is None else f"experiment {wanted.experiment.name}"
            self._report(f"rejected the new {what}, the current one keeps serving: {exc}")
            self.rejected = state  # after the message: observers see both together
            self._last_success = self._clock()  # the check is complete: its verdict is "bad model"
            return False
        except Exception as exc:  # not a verdict on the model (e.g. a read failed): retried with backoff
            self._fail(f"cannot load the new model: {_cause(exc)}")
            return False
        self.rejected = None
        self.last_error = None
        self._last_success = self._clock()  # a load takes a while: the check ends now
        before = current.champion.model if current is not None else None
        self.holder.install(serving)
        model = serving.champion.model
        if model is not before:
            previous = before.version if before is not None else "none"
            log.info("swapped model %s -> %s", previous, describe(model))
        if serving.experiment is not None or (current is not None and current.experiment is not None):
            log.info("serving %s", serving.describe())
        if self.on_swap is not None:
            self.on_swap(model)
        return True

    def _succeeded(self) -> None:
        self._last_success = self._clock()
        if self.failures:
            log.info("model checks work again after %d failed attempt(s)", self.failures)
            self.failures = 0
            self.last_error = None

    def _report(self, message: str) -> None:
        if message != self.last_error:  # once per distinct failure, not at every poll
            log.error("%s", message)
        self.last_error = message

    def _fail(self, message: str) -> None:
        self.failures += 1
        if message != self.last_error:
            log.error("%s; retrying with backoff (next in %.0f s)", message, self.next_delay())
        self.last_error = message

    def _run(self) -> None:
        while not self._stop.wait(self.next_delay()):
            try:
                self.poll_once()
            except Exception as exc:  # the thread must outlive anything a check can raise
                self._fail(f"model check failed: {_cause(exc)}")

    def start(self) -> ModelWatcher:
        """Poll in a daemon thread (nothing to do when the interval is 0)."""
        if self.interval > 0:
            self._thread = threading.Thread(target=self._run, name="model-watcher", daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Stop polling (a load in progress finishes in the background)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5.0)


def _cause(exc: BaseException) -> str:
    """One line naming the exception's type and message (AikError messages are already user-facing)."""
    if isinstance(exc, AikError):
        return str(exc)
    text = str(exc).splitlines()[0] if str(exc) else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
