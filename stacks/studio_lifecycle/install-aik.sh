#!/bin/bash
# Studio lifecycle configuration (JupyterLab app) of the kit: installs `aik` into the kernel's Python
# each time a JupyterLab space starts, without moving any package the image already has.
#
# The stack prepends `AIK_SOURCE=s3://<bootstrap bucket>/bootstrap/` (the kit's sources it deploys for
# EMR as well). Studio runs the script at app start with the space's execution role, stops it after
# 5 minutes, and logs its output to CloudWatch Logs `/aws/sagemaker/studio`, stream
# `<domain id>/<space name>/JupyterLab/default/LifecycleConfigOnStart`; a non-zero exit fails the start.
#
# The image's packages stay as they are: the kit goes in without dependencies, then only the
# requirements no installed package meets are installed, with every installed version as a
# constraint (`pip list --format=freeze`: name==version, also for conda's packages, which `pip freeze`
# writes as `name @ file://...`). A requirement the image meets at another version fails the install
# with pip's reason instead of moving the image's package; the package list is compared at the end.
#
# Settings (environment): AIK_SOURCE   s3:// prefix or local directory holding pyproject.toml and aik/
#                         AIK_PYTHON   the kernel's interpreter (default /opt/conda/bin/python, else python3)
#                         AIK_EXTRAS   extras of the kit to install (default: studio; empty for none)
# Usage: [AIK_SOURCE=...] install-aik.sh [SOURCE]
set -euo pipefail

SOURCE="${1:-${AIK_SOURCE:-}}"
if [[ -z "$SOURCE" ]]; then
    echo "usage: $0 SOURCE (s3://bucket/prefix/ or a directory with the kit's pyproject.toml)" >&2
    exit 2
fi
if [[ -z "${AIK_PYTHON:-}" ]]; then
    if [[ -x /opt/conda/bin/python ]]; then AIK_PYTHON=/opt/conda/bin/python; else AIK_PYTHON=python3; fi
fi
EXTRAS="${AIK_EXTRAS-studio}"
PROJECT=advertising-intelligence-kit
PIP=("$AIK_PYTHON" -m pip --disable-pip-version-check)
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "aik: fetching the kit's sources from $SOURCE"
mkdir "$WORK/src"
case "$SOURCE" in
    s3://*) aws s3 cp --recursive --only-show-errors "$SOURCE" "$WORK/src" ;;
    *) cp -R "$SOURCE"/. "$WORK/src" ;;
esac
if [[ ! -f "$WORK/src/pyproject.toml" ]]; then
    echo "aik: no pyproject.toml under $SOURCE: is the aik/sagemaker-emr stack deployed?" >&2
    exit 1
fi

# The image's packages, pinned (the kit itself left out, so that a new deployment replaces it).
"${PIP[@]}" list --format=freeze --exclude-editable | grep -v -i "^${PROJECT}==" >"$WORK/image.txt" || true

echo "aik: installing $PROJECT into $("$AIK_PYTHON" -c 'import sys; print(sys.prefix)')"
"${PIP[@]}" install --quiet --no-cache-dir --no-deps --force-reinstall "$WORK/src"

# The kit's requirements (with EXTRAS) that no installed distribution meets, one per line.
unmet() {
    "$AIK_PYTHON" - "$PROJECT" "$EXTRAS" <<'PY'
import sys
from importlib import metadata

try:
    from packaging.requirements import Requirement
except ImportError:  # a bare interpreter: pip's own copy
    from pip._vendor.packaging.requirements import Requirement

project, extras = sys.argv[1], [e for e in sys.argv[2].split(",") if e]
for line in metadata.requires(project) or []:
    req = Requirement(line)
    wanted = not req.marker or any(req.marker.evaluate({"extra": e}) for e in ["", *extras])
    if not wanted:
        continue
    try:
        version = metadata.version(req.name)
    except metadata.PackageNotFoundError:
        version = None
    if version is None or not req.specifier.contains(version, prereleases=True):
        print(str(req).split(";")[0].strip())
PY
}
# Undo the kit's own install, so that a failed start leaves no half-installed `aik` behind.
fail() {
    echo "aik: not installed: $*" >&2
    "${PIP[@]}" uninstall --quiet --yes "$PROJECT" || true
    exit 1
}
mapfile -t missing < <(unmet)
if ((${#missing[@]})); then
    echo "aik: installing the requirements the image does not meet: ${missing[*]}"
    "${PIP[@]}" install --quiet --no-cache-dir --constraint "$WORK/image.txt" "${missing[@]}" ||
        fail "the kit needs a version of a package the image has at another version (pip's reason" \
            "above); the image's packages were left as they were"
fi
mapfile -t still < <(unmet)
if ((${#still[@]})); then fail "requirements still unmet: ${still[*]}"; fi

"${PIP[@]}" list --format=freeze --exclude-editable >"$WORK/after.txt"
# Lines of the image's list that are gone afterwards: a package that moved or disappeared.
moved="$(grep -v -x -F -f "$WORK/after.txt" "$WORK/image.txt" || true)"
if [[ -n "$moved" ]]; then fail "the install changed packages of the image (versions before):" "$moved"; fi
"$AIK_PYTHON" -c "import aik, aik.params, aik.storage; print('aik: ready in', aik.__path__[0])"
