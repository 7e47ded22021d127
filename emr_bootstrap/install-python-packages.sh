#!/bin/bash
# EMR bootstrap action of the kit's Studio-launched clusters. EMR runs it on every node, as the hadoop
# user, before the applications start; a non-zero exit fails the cluster launch (with this script's
# output in the cluster's log URI under node/<instance>/bootstrap-actions/).
#
# Installs Python 3.11 (EMR 7 ships 3.9 as python3; the kit, mleap and pandas need 3.11, and the
# cluster's spark-env points PYSPARK_PYTHON at it), the pinned packages of requirements.txt, and the
# kit's own `aik` package (without dependencies: they are the pinned ones, and pyspark is EMR's).
#
# Usage: install-python-packages.sh s3://<bootstrap-bucket>/bootstrap/
set -euo pipefail

SOURCE="${1:?usage: $0 s3://<bootstrap-bucket>/bootstrap/}"
PYTHON=/usr/bin/python3.11
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT

echo "installing Python 3.11 and build tools"
sudo dnf install -y -q python3.11 python3.11-pip python3.11-devel gcc

echo "fetching the kit's sources from $SOURCE"
aws s3 cp --recursive --only-show-errors "$SOURCE" "$WORK"

echo "installing the feature job's packages"
sudo "$PYTHON" -m pip install --no-cache-dir --quiet --requirement "$WORK/emr_bootstrap/requirements.txt"
sudo "$PYTHON" -m pip install --no-cache-dir --quiet --no-deps "$WORK"

# Fail the launch here, with a clear message, rather than in the first notebook cell.
"$PYTHON" -c "import aik.device, mleap, pandas, pyarrow, woothee; print('aik packages ready')"
