#!/usr/bin/env bash
# Installs Debian's chromium for the e2e tests that drive Roster's web console in a
# headless browser (e2e/console_test.go). Nothing is started here; each test starts its
# own browser with a fresh profile. A machine where it cannot be installed gets a
# message, and those tests then skip saying so.
set -u

if [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
  echo "chromium.sh: chromium is not installed and installing it needs apt-get as root; the console browser tests will skip"
  exit 0
fi
echo "chromium.sh: apt-get install chromium"
log="$(mktemp -t roster-chromium-install.XXXXXX)"
if (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) >"$log" 2>&1; then
  rm -f "$log"
else
  echo "chromium.sh: apt-get install chromium failed (log: $log); the console browser tests will skip"
fi
exit 0
