"""xgboost's side of a model load, in a short-lived child (`python -m filtering_server.xgboost_child`).

xgboost parses untrusted bytes in C++ and can abort the whole process on some inputs (an empty buffer
does, in xgboost 3.2); in a child, such a crash only rejects the model and the server keeps serving.
The parent (`model.BoosterInspector`) sends length-prefixed pickled requests on stdin — ("load", bytes),
("predict", float32 matrix) — and reads ("ok", value) or ("error", message) replies on stdout. Pickle
is safe here: both ends are this package, connected by a private pipe.
"""

from __future__ import annotations

import pickle
import re
import struct
import sys
from typing import IO, Any

import numpy as np

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


def main() -> int:
    """Serve load/predict requests until stdin closes."""
    import xgboost

    booster: Any = None
    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    while True:
        try:
            command, payload = read_message(stdin)
        except EOFError:
            return 0
        try:
            if command == "load":
                booster = xgboost.Booster()
                booster.load_model(bytearray(payload))
                booster.set_param({"nthread": 1})
                reply: Any = ("ok", booster.save_raw(raw_format="json").decode("utf-8"))
            elif command == "predict":
                predictions = booster.inplace_predict(
                    np.asarray(payload, dtype=np.float32), validate_features=False
                )
                reply = ("ok", np.asarray(predictions, dtype=np.float64))
            else:
                reply = ("error", f"unknown command {command!r}")
        except Exception as exc:
            lines = str(exc).strip().splitlines()
            # xgboost prefixes its messages with "[hh:mm:ss] /path/file.cc:123: "
            first = re.sub(r"^\[[\d:]+\] \S+:\d+: ", "", lines[0]) if lines else type(exc).__name__
            reply = ("error", first)
        write_message(stdout, reply)


if __name__ == "__main__":
    raise SystemExit(main())
