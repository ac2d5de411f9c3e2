#!/usr/bin/env bash
# Installs what packaging/check.sh validates with, once: Debian's systemd (for
# systemd-analyze), busybox, shellcheck and docker-compose (whose `config` validates a compose file without
# a Docker daemon), and PyPI's kubernetes-validate, pinned, which bundles the
# Kubernetes schemas and so validates offline. Prints the venv's python on stdout.
set -euo pipefail

KUBERNETES_VALIDATE=1.37.0
venv=${XDG_CACHE_HOME:-$HOME/.cache}/roster-packaging/venv-kubernetes-validate-$KUBERNETES_VALIDATE

missing=()
command -v systemd-analyze >/dev/null || missing+=(systemd)
command -v docker-compose >/dev/null || docker compose version >/dev/null 2>&1 || missing+=(docker-compose)
# The image's shell is busybox's: go test ./packaging runs the entrypoint under it too.
command -v busybox >/dev/null || missing+=(busybox)
command -v shellcheck >/dev/null || missing+=(shellcheck)
if ((${#missing[@]})) && command -v apt-get >/dev/null; then
	echo "packaging/tools.sh: apt-get install ${missing[*]}" >&2
	if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2; then
		apt-get update -qq >&2
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2
	fi
fi

if [ ! -x "$venv/bin/kubernetes-validate" ]; then
	echo "packaging/tools.sh: pip install kubernetes-validate==$KUBERNETES_VALIDATE into $venv" >&2
	rm -rf "$venv"
	python3 -m venv "$venv" >&2
	"$venv/bin/pip" install -q "kubernetes-validate==$KUBERNETES_VALIDATE" >&2
fi
echo "$venv/bin/python"
