#!/usr/bin/env bash
# Creates compat/python/.venv-v01 and .venv-new and installs the pinned
# nacos-sdk-python of each; a venv whose requirements file is unchanged is kept.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "compat/python/build.sh: $*" >&2; exit 1; }

command -v python3 >/dev/null 2>&1 || fail "python3 not found (install Python 3.8+ with the venv module and pip)"
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 \
  || fail "python3 has no venv/ensurepip module (on Debian: apt-get install python3-venv)"

build_one() {
  local name=$1 req=$2 dir=.venv-$1
  local stamp=$dir/.requirements.sha256
  local want
  want=$( (cat "$req"; python3 --version 2>&1) | sha256sum | cut -d' ' -f1)
  if [[ -x $dir/bin/python && -f $stamp && $(cat "$stamp") == "$want" ]]; then
    echo "compat/python: $dir up to date ($req)"
    return
  fi
  echo "compat/python: building $dir from $req"
  rm -rf "$dir"
  python3 -m venv "$dir" || fail "python3 -m venv $dir failed (venv missing?)"
  "$dir/bin/python" -m pip --version >/dev/null 2>&1 || fail "pip is missing in $dir (python3 -m ensurepip failed)"
  "$dir/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req" \
    || fail "pip install -r $req failed"
  echo "$want" >"$stamp"
}

build_one v01 requirements-v01.txt
build_one new requirements-new.txt
