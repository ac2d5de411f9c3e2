#!/usr/bin/env bash
# Builds r-nacos (an independent Nacos-protocol server in Rust) from crates.io, once,
# into the cache below; later runs reuse it. Prints the binary's path on stdout when
# it is there, nothing when it could not be built (the reason goes to stderr).
# Used by bench/peers.sh (make bench) and by the import test (make test-import).
set -u
RNACOS_VERSION=0.8.8
cache="${XDG_CACHE_HOME:-$HOME/.cache}/roster-bench/peers"
bin="$cache/bin/rnacos"

if [ ! -x "$bin" ]; then
  if command -v cargo >/dev/null; then
    echo "rnacos: building r-nacos $RNACOS_VERSION with cargo (once; this takes a while on 2 cores)" >&2
    mkdir -p "$cache"
    start=$(date +%s)
    if cargo install --locked --root "$cache" "rnacos@$RNACOS_VERSION" >"$cache/install.log" 2>&1; then
      echo "rnacos: built in $(( $(date +%s) - start ))s" >&2
    else
      echo "rnacos: r-nacos build failed, see $cache/install.log" >&2
    fi
  else
    echo "rnacos: no cargo, r-nacos left out" >&2
  fi
fi
[ -x "$bin" ] && echo "$bin"
exit 0
