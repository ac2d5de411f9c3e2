#!/usr/bin/env bash
# Installs the peers roster-bench drives beside Roster, each from its package registry:
# r-nacos (crates.io, built once into the cache below, which later runs reuse) and
# Debian's etcd-server and zookeeper. A peer that cannot be installed is left out here;
# roster-bench then reports why its rows are empty.
set -u
# r-nacos: bench/rnacos.sh builds it once into the shared cache (the import test uses it too).
bash "$(dirname "$0")/rnacos.sh" >/dev/null

if ! command -v etcd >/dev/null || [ ! -f /usr/share/java/zookeeper.jar ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "peers: apt-get install etcd-server zookeeper"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends etcd-server zookeeper) >/dev/null 2>&1 \
      || echo "peers: apt-get install etcd-server zookeeper failed"
  else
    echo "peers: etcd-server and zookeeper need apt-get as root; left out"
  fi
fi
exit 0
