#!/usr/bin/env bash
# Set up (or reuse) a local virtual environment, then run liquid_jax.
#   ./dev.sh test [pytest args]        the test suite
#   ./dev.sh demo --workdir DIR        the whole Liquid recipe on the shapes world
#   ./dev.sh <liquid-jax command> ...  any other `liquid-jax` subcommand
set -euo pipefail
cd "$(dirname "$0")"

VENV="${LIQUID_VENV:-.venv}"
if [ ! -x "$VENV/bin/python" ]; then
  # liquid_jax needs Python 3.11 or newer (setup.py): another python3 is not a fallback.
  PYTHON="${PYTHON:-}"
  if [ -z "$PYTHON" ]; then
    for candidate in python3.11 python3.12 python3.13 python3; do
      command -v "$candidate" >/dev/null || continue
      if "$candidate" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
        PYTHON="$candidate"
        break
      fi
    done
  fi
  if [ -z "$PYTHON" ] || ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    found="$(python3 --version 2>&1 || echo "no python3")"
    echo "dev.sh: needs Python 3.11 or newer ($found). Install it (e.g. uv python install" \
      "3.11) or set PYTHON=/path/to/python3.11" >&2
    exit 1
  fi
fi

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
