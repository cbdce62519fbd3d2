#!/usr/bin/env bash
# Thin wrapper: `launch/tpu_pod.sh up --name N --zone Z --accelerator v5p-64 ...`.
# All the logic (and --help) lives in launch/tpu_pod.py; this only picks a Python.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py="${PYTHON:-}"
[ -z "$py" ] && [ -x "$here/../.venv/bin/python" ] && py="$here/../.venv/bin/python"
exec "${py:-python3}" "$here/tpu_pod.py" "$@"
