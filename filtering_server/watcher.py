"""Zero-downtime model swap: poll the parameters and the artifacts' fingerprints, load, validate, swap.

Every `interval` seconds the watcher reads the three parameters and a fingerprint of each artifact
(S3 ETag, local inode/mtime/size). When anything changed it loads the new model in its own thread,
validates it (`model.load_model`: schema and bundle checks, seven features, a probe set scored in
[0, 1] and identical to xgboost's own predictions) and publishes it by replacing one reference
(`ModelHolder.current`), which requests read once each: a request is scored wholly by the old or
wholly by the new model. A model that fails is logged with its URI and the old one keeps serving; the
same broken state is not retried until the parameters or artifacts change again.

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
from aik.params import ParameterStore
from filtering_server.model import DEFAULT_MAX_STRING, ModelSources, ServedModel, fingerprints, load_model

log = logging.getLogger(__name__)


class ModelHolder:
    """The model being served; replacing `current` is the atomic swap."""

    def __init__(self, model: ServedModel | None = None) -> None:
        self.current: ServedModel | None = model
        self.swaps = 0

    def swap(self, model: ServedModel) -> None:
        """Serve `model` from the next request on."""
        self.current = model
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
        self.rejected: tuple[ModelSources, tuple[str, ...]] | None = None
        self.last_error: str | None = None
        #: Failed checks in a row (the retry delay doubles with each).
        self.failures = 0
        self._clock = clock
        self._last_success: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def load_initial(self) -> ServedModel:
        """Load the first model (raises `AikError` naming the parameter or URI that failed)."""
        model = load_model(ModelSources.from_store(self.store), max_string=self.max_string)
        self._last_success = self._clock()
        self.holder.swap(model)
        log.info("serving %s", describe(model))
        return model

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
        """Check once; load, validate and swap if anything changed. True when a new model was swapped in."""
        try:
            sources = ModelSources.from_store(self.store)
            prints = fingerprints(sources)
        except Exception as exc:  # any failure here is the store's or storage's, retried with backoff
            self._fail(f"cannot check for a new model: {_cause(exc)}")
            return False
        self._last_success = self._clock()
        if self.failures:
            log.info("model checks work again after %d failed attempt(s)", self.failures)
            self.failures = 0
            self.last_error = None
        current = self.holder.current
        if current is not None and (sources, prints) == (current.sources, current.fingerprints):
            return False
        if (sources, prints) == self.rejected:
            return False
        try:
            model = load_model(sources, max_string=self.max_string)
        except AikError as exc:
            self._report(f"rejected the new model, the current one keeps serving: {exc}")
            self.rejected = (sources, prints)  # after the message: observers see both together
            self._last_success = self._clock()  # the check is complete: its verdict is "bad model"
            return False
        except Exception as exc:  # not a verdict on the model (e.g. a read failed): retried with backoff
            self._fail(f"cannot load the new model from {sources.model_uri}: {_cause(exc)}")
            return False
        self.rejected = None
        self.last_error = None
        self._last_success = self._clock()  # a load takes a while: the check ends now
        previous = current.version if current is not None else "none"
        self.holder.swap(model)
        log.info("swapped model %s -> %s", previous, describe(model))
        if self.on_swap is not None:
            self.on_swap(model)
        return True

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
