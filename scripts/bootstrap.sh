#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install clearcube into it.
#
# Idempotent and cached: it reinstalls only when pyproject.toml or the constraints changed since
# the last run. Every dependency's version is pinned by scripts/constraints.txt.
# torch is pinned to the CPU build that pip finds on local disk (an unpinned torch would pull
# a multi-GB CUDA build); on a GPU machine install the [gpu] extra and a CUDA torch yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${CLEARCUBE_VENV:-.venv}
EXTRAS=${CLEARCUBE_EXTRAS:-dev}
TORCH=${CLEARCUBE_TORCH:-torch==2.13.0}
# Pinned versions of every dependency (scripts/constraints.txt); set it empty to resolve afresh.
CONSTRAINTS=${CLEARCUBE_CONSTRAINTS-scripts/constraints.txt}

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

stamp="$VENV/.clearcube-installed"
pins=none
[ -n "$CONSTRAINTS" ] && pins="$(sha256sum "$CONSTRAINTS" | cut -c1-16)"
want="$(sha256sum pyproject.toml | cut -c1-16) $EXTRAS $TORCH $pins"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing clearcube[$EXTRAS] into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q "$TORCH"
    "$VENV/bin/python" -m pip install -q ${CONSTRAINTS:+-c "$CONSTRAINTS"} -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
fi
