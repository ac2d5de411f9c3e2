#!/usr/bin/env bash
# Builds the Go client programs of the compatibility matrix into compat/go/bin.
set -euo pipefail
if ! command -v go >/dev/null 2>&1; then
  echo "compat/go/build.sh: go is not installed (Go 1.26 is needed to build the Go clients)" >&2
  exit 1
fi
cd "$(dirname "$0")/.."
mkdir -p go/bin
for p in gov1 gov2; do
  go build -o "go/bin/$p" "./go/$p"
done
echo "compat/go/build.sh: built compat/go/bin/gov1 and compat/go/bin/gov2"
