"""A neural release's ONNX file: its contract and an ONNX Runtime session over it (no PyTorch).

The export (`aik.train.families.onnx_export`) writes the graph from the pipeline's float rows
(`INPUT`, FEATURE_COLUMNS order, any number of rows) to the probability of label 1 (`OUTPUT`), with
metadata naming the family (`FAMILY_KEY`) and the bundle whose codes it was trained on
(`BINDING_KEY`, the same digest a booster carries). The training parity gate, `aik promote` and the
filtering server all open it through `session`, so the gate measures the runtime the server uses.
onnxruntime (the `neural` extra) is imported only when a session is made.
"""

from __future__ import annotations

from typing import Any

from aik.errors import AikError, ArtifactError

INPUT, OUTPUT = "features", "probability"
FAMILY_KEY = "aik_family"
#: The same name as the booster's attribute (`aik.releases.BOOSTER_ATTRIBUTE`).
BINDING_KEY = "aik_indexer_sha256"
INSTALL_HINT = "install onnxruntime: the kit's serve-onnx or neural extra"


class OnnxRuntimeMissing(AikError):
    """onnxruntime is not installed, so an ONNX model cannot be opened here."""


def session(data: bytes, uri: str = "<bytes>") -> Any:
    """An ONNX Runtime session on the CPU, scoring in the calling thread (one intra-op thread).

    Raises `OnnxRuntimeMissing` without onnxruntime, `ArtifactError` naming `uri` for a file it refuses.
    """
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OnnxRuntimeMissing(
            f"{uri} needs ONNX Runtime, which is not installed ({INSTALL_HINT})"
        ) from exc
    options = ort.SessionOptions()
    # each connection thread runs its own requests: no pool of runtime threads competing with them
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types for a bad file
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ArtifactError(uri, f"not an ONNX model ONNX Runtime loads ({reason})") from exc


def metadata(sess: Any) -> dict[str, str]:
    """The model's metadata properties (family, binding)."""
    return dict(sess.get_modelmeta().custom_metadata_map)


def check_signature(sess: Any, features: int, uri: str) -> None:
    """`ArtifactError` unless the graph takes `INPUT` rows of `features` floats and returns `OUTPUT`."""
    inputs = {i.name: i for i in sess.get_inputs()}
    outputs = {o.name for o in sess.get_outputs()}
    if INPUT not in inputs or OUTPUT not in outputs:
        raise ArtifactError(
            uri,
            f"the graph's inputs are {sorted(inputs)} and outputs {sorted(outputs)}, expected "
            f"{INPUT!r} -> {OUTPUT!r}",
        )
    shape = inputs[INPUT].shape
    if len(shape) != 2 or shape[1] != features:
        raise ArtifactError(
            uri, f"the graph takes rows of shape {shape}, the server sends {features} features"
        )
    if inputs[INPUT].type != "tensor(float)":
        raise ArtifactError(uri, f"the graph takes {inputs[INPUT].type}, expected tensor(float)")
