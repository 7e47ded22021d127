"""xgboost in a short-lived child process (`python -m filtering_server.xgboost_child`), and its handle.

xgboost parses untrusted bytes in C++ and can abort the whole process on some inputs (an empty buffer
does, in xgboost 3.2); in a child, such a crash only rejects the model and the server keeps serving.
The parent (`BoosterInspector`, used by `model.load_model`) sends length-prefixed pickled requests on
stdin — ("load", bytes), ("predict", float32 matrix) — and reads ("ok", value) or ("error", reason)
replies on stdout. Pickle is safe here: both ends are this package, connected by a private pipe.
"""

from __future__ import annotations

import contextlib
import json
import pickle
import struct
import subprocess
import sys
import threading
from typing import IO, Any

import numpy as np

from aik.booster import load_booster, xgboost_message
from aik.errors import ArtifactError

_HEADER = struct.Struct(">Q")


def write_message(stream: IO[bytes], message: Any) -> None:
    """One length-prefixed pickle."""
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    stream.write(_HEADER.pack(len(data)) + data)
    stream.flush()


def read_message(stream: IO[bytes]) -> Any:
    """The next length-prefixed pickle (EOFError at the end of the stream)."""
    header = stream.read(_HEADER.size)
    if len(header) < _HEADER.size:
        raise EOFError
    (size,) = _HEADER.unpack(header)
    data = stream.read(size)
    if len(data) < size:
        raise EOFError
    return pickle.loads(data)


class BoosterInspector:
    """xgboost in a child process: parse the booster, dump its JSON, predict the probe set.

    The serving process never hands untrusted bytes to xgboost's C++ parser (which aborts the process
    on some inputs): a crash or a hang of the child rejects the model and nothing else.
    """

    def __init__(self, uri: str, timeout: float = 300.0) -> None:
        self.uri = uri
        self.timeout = timeout
        self._proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> BoosterInspector:
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "filtering_server.xgboost_child"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        proc = self._proc
        if proc is None:
            return
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()

    def load_json(self, model_bytes: bytes) -> dict[str, Any]:
        """xgboost's JSON dump of the booster (ArtifactError naming the URI if xgboost refuses it)."""
        return json.loads(self._call("load", model_bytes))

    def predict(self, x: np.ndarray) -> np.ndarray:
        """xgboost's predictions for a feature matrix (after `load_json`)."""
        return np.asarray(self._call("predict", np.asarray(x, dtype=np.float32)), dtype=np.float64)

    def _call(self, command: str, payload: Any) -> Any:
        proc = self._proc
        assert proc is not None and proc.stdin is not None and proc.stdout is not None
        stdin, stdout = proc.stdin, proc.stdout
        result: list[Any] = []

        def exchange() -> None:
            try:
                write_message(stdin, (command, payload))
                result.append(read_message(stdout))
            except (EOFError, OSError) as exc:
                result.append(exc)

        worker = threading.Thread(target=exchange, name="xgboost-child", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if worker.is_alive():
            proc.kill()
            raise ArtifactError(self.uri, f"xgboost did not read the model within {self.timeout:.0f} s")
        reply = result[0]
        if isinstance(reply, BaseException):
            proc.kill()
            code = proc.wait()
            raise ArtifactError(self.uri, f"xgboost crashed while reading the model (exit status {code})")
        status, value = reply
        if status != "ok":
            raise ArtifactError(self.uri, value)
        return value


def main() -> int:
    """Serve load/predict requests until stdin closes."""
    booster: Any = None
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            command, payload = read_message(stdin)
        except EOFError:
            return 0
        try:
            if command == "load":
                booster = load_booster(payload)
                booster.set_param({"nthread": 1})
                reply: Any = ("ok", booster.save_raw(raw_format="json").decode("utf-8"))
            elif command == "predict":
                predictions = booster.inplace_predict(
                    np.asarray(payload, dtype=np.float32), validate_features=False
                )
                reply = ("ok", np.asarray(predictions, dtype=np.float64))
            else:
                reply = ("error", f"unknown command {command!r}")
        except ArtifactError as exc:
            reply = ("error", exc.reason)
        except Exception as exc:
            reply = ("error", f"xgboost failed: {xgboost_message(exc)}")
        write_message(stdout, reply)


if __name__ == "__main__":
    raise SystemExit(main())
