#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment in .venv and install clearcube into it.
#
# Idempotent and cached: it reinstalls only when pyproject.toml changed since the last run.
# torch is pinned to the CPU build that pip finds on local disk (an unpinned torch would pull
# a multi-GB CUDA build); on a GPU machine install the [gpu] extra and a CUDA torch yourself.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
VENV=${CLEARCUBE_VENV:-.venv}
EXTRAS=${CLEARCUBE_EXTRAS:-dev}
TORCH=${CLEARCUBE_TORCH:-torch==2.13.0}

if [ ! -x "$VENV/bin/python" ]; then
    echo "bootstrap: creating $VENV with $($PY --version)"
    "$PY" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi

stamp="$VENV/.clearcube-installed"
want="$(sha256sum pyproject.toml | cut -c1-16) $EXTRAS $TORCH"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "bootstrap: installing clearcube[$EXTRAS] into $VENV (first run takes a few minutes)"
    "$VENV/bin/python" -m pip install -q "$TORCH"
    "$VENV/bin/python" -m pip install -q -e ".[$EXTRAS]"
    echo "$want" > "$stamp"
fi
