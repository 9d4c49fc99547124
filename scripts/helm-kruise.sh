#!/bin/sh
# The helm plugin's entry point: run kruisectl from the plugin's own checkout (its .venv, made
# by `make venv`), else a kruisectl on PATH, else python3 with the checkout on PYTHONPATH.
set -e
dir=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
if [ -x "$dir/.venv/bin/kruisectl" ]; then
  exec "$dir/.venv/bin/kruisectl" "$@"
elif command -v kruisectl >/dev/null 2>&1; then
  exec kruisectl "$@"
else
  PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}" exec python3 -m kruisectl "$@"
fi
