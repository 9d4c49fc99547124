#!/bin/sh
# The helm plugin's entry point. It runs the first kruisectl of: $KRUISECTL (a path or a command
# name), the .venv of the checkout the plugin was installed from (`make venv`), kruisectl on PATH
# (where `pip install kruisectl-<version>-py3-none-any.whl` put it, in an active virtualenv or
# with pipx), python3 -m kruisectl with that checkout on PYTHONPATH. Without one it says, in a
# line, how to get it. `--hook` (helm's install and update hooks) only reports what it found,
# and never fails: the plugin may be installed before kruisectl is.
set -e
dir=${HELM_PLUGIN_DIR:-$(cd "$(dirname "$0")/.." && pwd)}
version=$(sed -n 's/^version: *//p' "$dir/plugin.yaml")
hook=
if [ "$1" = "--hook" ]; then hook=1; shift; fi
if [ -n "$KRUISECTL" ]; then
  set -- "$KRUISECTL" "$@"
elif [ -x "$dir/.venv/bin/kruisectl" ]; then
  set -- "$dir/.venv/bin/kruisectl" "$@"
elif command -v kruisectl >/dev/null 2>&1; then
  set -- "$(command -v kruisectl)" "$@"
elif [ -f "$dir/kruisectl/__init__.py" ]; then
  export PYTHONPATH="$dir${PYTHONPATH:+:$PYTHONPATH}"
  set -- python3 -m kruisectl "$@"
else
  echo "error: the kruise plugin $version finds no kruisectl: pip install kruisectl-$version-py3-none-any.whl (in an active virtualenv, or with pipx), or set KRUISECTL to its path" >&2
  if [ -n "$hook" ]; then exit 0; fi
  exit 2
fi
if [ -n "$hook" ]; then
  echo "the kruise plugin $version runs $*: $("$@" --version 2>&1 || echo "which fails to start")"
  exit 0
fi
exec "$@"
