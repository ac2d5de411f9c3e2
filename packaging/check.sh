#!/usr/bin/env bash
# The offline validators of the deployment files (make packaging-check, part of make
# test). No Docker daemon or Kubernetes cluster is needed:
#   - the systemd unit: systemd-analyze verify, where any warning counts as a failure;
#   - the compose file: docker-compose config (schema and interpolation), then
#     check_deploy.py runs each node's environment through the entrypoint;
#   - the Kubernetes manifests: kubernetes-validate --strict against the bundled schemas
#     of several Kubernetes versions, then check_deploy.py's consistency checks.
#   - the shell scripts: shellcheck (the entrypoint as POSIX sh).
# The Dockerfile and the entrypoint's mapping are checked by go test ./packaging.
set -euo pipefail
cd "$(dirname "$0")"
python=$(bash tools.sh)
roster=${ROSTER_BIN:-../bin/roster}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

echo "== shell scripts"
if command -v shellcheck >/dev/null; then
	shellcheck -s sh docker-entrypoint.sh
	shellcheck check.sh tools.sh
	echo "shellcheck: ok"
else
	echo "SKIPPED: shellcheck is not installed (Debian: apt-get install shellcheck)"
fi

echo "== systemd unit"
if command -v systemd-analyze >/dev/null; then
	# verify also checks that ExecStart's binary exists: point it at the one just built.
	sed "s|/usr/local/bin/roster|$(realpath "$roster")|" systemd/roster.service >"$tmp/roster.service"
	out=$(cd "$tmp" && systemd-analyze verify roster.service 2>&1) || { echo "$out"; exit 1; }
	# verify exits 0 on an unknown key or a bad value, which it only prints.
	if [ -n "$out" ]; then echo "$out"; echo "systemd-analyze verify: warnings count as failures"; exit 1; fi
	# ...and that it does print them here: a misspelt key must be reported.
	sed 's/^Type=notify/Typ=notify/' "$tmp/roster.service" >"$tmp/broken.service"
	if [ -z "$(cd "$tmp" && systemd-analyze verify broken.service 2>&1)" ]; then
		echo "systemd-analyze verify did not report a misspelt key: the check would prove nothing"; exit 1
	fi
	echo "systemd-analyze verify: ok"
else
	echo "SKIPPED: systemd-analyze is not installed (Debian: apt-get install systemd); the unit is not verified"
fi

echo "== compose file"
key=$(printf 'k%.0s' $(seq 64))
if command -v docker-compose >/dev/null; then
	compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
	compose=(docker compose)
else
	compose=()
fi
if ((${#compose[@]})); then
	ROSTER_CLUSTER_KEY=$key "${compose[@]}" -f compose.yaml config -q
	if ROSTER_CLUSTER_KEY='' "${compose[@]}" -f compose.yaml config -q 2>/dev/null; then
		echo "compose.yaml must refuse to start without ROSTER_CLUSTER_KEY"; exit 1
	fi
	echo "${compose[*]} config: ok"
else
	echo "SKIPPED: neither docker-compose nor docker compose is installed; compose.yaml's schema is not checked"
fi

echo "== Kubernetes manifests"
for v in 1.30.0 1.33.0 1.37.0; do
	"$(dirname "$python")/kubernetes-validate" --strict --quiet -k "$v" kubernetes/*.yaml
	echo "kubernetes-validate --strict -k $v: ok"
done

# The validator must refuse a misspelt field, or passing proves nothing.
sed 's/readinessProbe:/readinesProbe:/' kubernetes/roster.yaml >"$tmp/broken.yaml"
if "$(dirname "$python")/kubernetes-validate" --strict --quiet "$tmp/broken.yaml" >/dev/null 2>&1; then
	echo "kubernetes-validate accepted a misspelt field: the check would prove nothing"; exit 1
fi

echo "== consistency"
"$python" check_deploy.py
