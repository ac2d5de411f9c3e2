#!/usr/bin/env bash
# Installs compat/node's pinned dependencies (npm ci) unless node_modules already
# matches package-lock.json.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "compat/node/build.sh: $*" >&2; exit 1; }

command -v node >/dev/null 2>&1 || fail "node not found (install Node.js 18+)"
command -v npm >/dev/null 2>&1 || fail "npm not found (install npm with Node.js)"

stamp=node_modules/.roster-lock.sha256
want=$( (cat package.json package-lock.json; node --version) | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]]; then
  echo "compat/node: node_modules up to date"
  exit 0
fi
echo "compat/node: npm ci"
npm ci --no-audit --no-fund --loglevel=error || fail "npm ci failed"
echo "$want" >"$stamp"
