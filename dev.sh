#!/usr/bin/env bash
# Set up (or reuse) a local virtual environment, then run liquid_jax.
#   ./dev.sh test [pytest args]        the test suite
#   ./dev.sh demo --workdir DIR        the whole Liquid recipe on the shapes world
#   ./dev.sh <liquid-jax command> ...  any other `liquid-jax` subcommand
set -euo pipefail
cd "$(dirname "$0")"

VENV="${LIQUID_VENV:-.venv}"
PYTHON="${PYTHON:-python3.11}"
command -v "$PYTHON" >/dev/null || PYTHON=python3

extra=""
[ "${1:-}" = "test" ] && extra="[test]"

if [ ! -x "$VENV/bin/python" ]; then
  echo "dev.sh: creating $VENV with $($PYTHON --version)" >&2
  "$PYTHON" -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
fi
# Reinstall only when the declared dependencies change.
stamp="$VENV/.installed-$(cat setup.py | sha1sum | cut -c1-12)${extra//[^a-z]/}"
if [ ! -f "$stamp" ]; then
  echo "dev.sh: installing liquid_jax$extra into $VENV" >&2
  "$VENV/bin/python" -m pip install -q -e ".$extra"
  touch "$stamp"
fi

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  test)
    # pytest exits 5 when it collects nothing: that is a failure here, not a pass.
    exec "$VENV/bin/python" -m pytest "$@"
    ;;
  "")
    exec "$VENV/bin/liquid-jax" --help
    ;;
  *)
    exec "$VENV/bin/liquid-jax" "$cmd" "$@"
    ;;
esac
