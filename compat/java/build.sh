#!/usr/bin/env bash
# Builds the Java client programs of the compatibility matrix (compat/java/*/target):
# java1 (nacos-client 1.4.x), java2 (nacos-client 2.x), java3 (nacos-client 3.x), sca and
# sca2025 (Spring Cloud Alibaba 2023 and 2025), dubbo (Apache Dubbo 3.x),
# maintainer (nacos-maintainer-client).
# Dependencies come from Maven Central on the first run; later runs build offline from
# the local repository, and skip Maven entirely when nothing changed.
set -euo pipefail
cd "$(dirname "$0")"

fail() { echo "compat/java/build.sh: $*" >&2; exit 1; }

command -v java >/dev/null 2>&1 || fail "java not found (install a JDK 17+, e.g. apt-get install openjdk-17-jdk-headless)"
command -v mvn >/dev/null 2>&1 || fail "mvn not found (install Maven 3.8+, e.g. apt-get install maven)"
jv=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p')
[[ ${jv%%.*} -ge 17 ]] 2>/dev/null || fail "java $jv found; Java 17 or newer is needed"

# Everything the build reads, and the JDK: when it matches the last good build, the jars
# are up to date.
stamp=.build-stamp
want=$( (java -version 2>&1; find . -path '*/target' -prune -o -type f \( -name pom.xml -o -path '*/src/*' \) -print | LC_ALL=C sort | xargs sha256sum) | sha256sum | cut -d' ' -f1)
if [[ -f $stamp && $(cat "$stamp") == "$want" ]] && ls java1/target/java1.jar java2/target/java2.jar java3/target/java3.jar sca/target/sca.jar sca2025/target/sca2025.jar dubbo/target/dubbo.jar maintainer/target/maintainer.jar >/dev/null 2>&1; then
  echo "compat/java: up to date"
  exit 0
fi
rm -f "$stamp"

# Maven's console library writes colour resets even in batch mode: strip them.
mvn_q() { mvn -q -B "$@" 2>&1 | sed $'s/\e\\[[0-9;]*m//g'; }

# Offline first (a warm local repository builds in seconds); when something is missing
# there, the same build online fetches it.
offline_log=$(mktemp)
if mvn_q -o package -DskipTests >"$offline_log"; then
  rm -f "$offline_log"
else
  rm -f "$offline_log"
  echo "compat/java: mvn package (fetching dependencies from Maven Central)"
  mvn_q package -DskipTests || fail "mvn package failed"
fi
# Class data sharing for the Spring applications (two or three JVMs per run): a training
# run records the classes they load. Without it they still run, only slower to start.
for mod in sca sca2025; do
  rm -f $mod/target/$mod.jsa
  if ./run.sh $mod-train "$PWD/$mod/target/$mod.jsa.tmp" >$mod/target/train.log 2>&1 && [[ -s $mod/target/$mod.jsa.tmp ]]; then
    mv $mod/target/$mod.jsa.tmp $mod/target/$mod.jsa
  else
    echo "compat/java/build.sh: warning: no class data sharing archive for $mod (see compat/java/$mod/target/train.log)" >&2
  fi
done
echo "$want" >"$stamp"
echo "compat/java/build.sh: built compat/java/{java1,java2,java3,sca,sca2025,dubbo,maintainer}/target"
