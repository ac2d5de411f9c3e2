#!/usr/bin/env bash
# compat/java/run.sh java1|java2|java3|sca|sca2025|dubbo|maintainer: runs one Java client program of the compatibility
# matrix (built by build.sh). exec keeps the JVM in the driver's process group, so the
# driver's signals reach it; the sca consumer starts its provider JVM in that group too.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)

case "${1:-}" in
  java1) mod=java1 main=roster.compat.java1.Main ;;
  java2) mod=java2 main=roster.compat.java2.Main ;;
  java3) mod=java3 main=roster.compat.java2.Main ;; # java2's program on nacos-client 3.x
  sca) mod=sca main=roster.compat.sca.Main ;;
  sca2025) mod=sca2025 main=roster.compat.sca.Main ;; # sca's program on Spring Cloud Alibaba 2025
  dubbo) mod=dubbo main=roster.compat.dubbo.Main ;;
  maintainer) mod=maintainer main=roster.compat.maintainer.Main ;;
  sca-train) mod=sca main=roster.compat.sca.Main ;; # build.sh: writes the CDS archive ($2)
  sca2025-train) mod=sca2025 main=roster.compat.sca.Main ;;
  *) echo "usage: compat/java/run.sh java1|java2|java3|sca|sca2025|dubbo|maintainer" >&2; exit 2 ;;
esac
jar="$here/$mod/target/$mod.jar"
[[ -f $jar ]] || { echo "compat/java/run.sh: $jar is missing: run compat/java/build.sh" >&2; exit 1; }

# Short-lived programs: C1 only and the serial collector start fastest on a small machine.
# JVM warnings go to stderr: stdout is the driver's.
opts=(-XX:TieredStopAtLevel=1 -XX:+UseSerialGC -Xss512k -Xlog:disable -Xlog:all=warning:stderr
  -Djava.net.preferIPv4Stack=true -Dfile.encoding=UTF-8)
args=()
if [[ $1 == *-train ]]; then
  opts+=(-XX:ArchiveClassesAtExit="$2" -DJM.LOG.PATH="$here/$mod/target/train-logs"
    -DJM.SNAPSHOT.PATH="$here/$mod/target/train-cache")
  args=(train)
elif [[ -f $here/$mod/target/$mod.jsa ]]; then
  # Class data sharing archive written by build.sh; a stale one is ignored by the JVM.
  opts+=(-XX:SharedArchiveFile="$here/$mod/target/$mod.jsa" -Xshare:auto)
fi
exec java "${opts[@]}" -cp "$jar:$here/$mod/target/lib/*" "$main" "${args[@]}"
