#!/usr/bin/env bash
# compat/node/run.sh: runs the client program for the npm nacos package.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
exec node "$here/client.js"
