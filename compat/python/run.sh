#!/usr/bin/env bash
# compat/python/run.sh v01|new: runs the client program of that nacos-sdk-python line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
case "${1:-}" in
  v01) exec "$here/.venv-v01/bin/python" -u "$here/client_v01.py" ;;
  new) exec "$here/.venv-new/bin/python" -u "$here/client_new.py" ;;
  *) echo "usage: compat/python/run.sh v01|new" >&2; exit 2 ;;
esac
