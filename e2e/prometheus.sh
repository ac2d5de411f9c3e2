#!/usr/bin/env bash
# Installs Debian's prometheus for the e2e test that has a real Prometheus discover its
# scrape targets through Roster's http_sd endpoint (e2e/prometheus_test.go). Only the
# server binary is needed: --no-install-recommends leaves out prometheus-node-exporter.
# Nothing is started here; the test runs its own Prometheus on a loopback port. A
# machine where it cannot be installed gets a message, and the test then skips saying so.
set -u

if command -v prometheus >/dev/null; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "prometheus.sh: prometheus is not installed and installing it needs apt-get as root; the Prometheus e2e test will skip"
  exit 0
fi
echo "prometheus.sh: apt-get install prometheus"
log="$(mktemp -t roster-prometheus-install.XXXXXX)"
if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus) >"$log" 2>&1; then
  rm -f "$log"
else
  echo "prometheus.sh: apt-get install prometheus failed (log: $log); the Prometheus e2e test will skip"
fi
exit 0
