#!/usr/bin/env bash
# Make sure the tools the project needs outside Python are installed: Java 17+ (the Kafka
# broker), Maven (resolves the broker's jars), Prometheus (promtool and the scrape test) and
# Chromium with its ChromeDriver (the console's browser tests). Installs them from Debian's
# packages when missing and we are root; otherwise says what to install.
set -euo pipefail

need=()
java_ok() {
  command -v java >/dev/null || return 1
  local v
  v=$(java -XshowSettings:properties -version 2>&1 | awk -F' = ' '/java.specification.version/ {print $2}')
  [[ ${v%%.*} -ge 17 ]]
}
java_ok || need+=(openjdk-17-jre-headless)
command -v mvn >/dev/null || need+=(maven)
# promtool checks and unit-tests the alerting rules; the real Prometheus scrapes a worker in the tests.
command -v promtool >/dev/null && command -v prometheus >/dev/null || need+=(prometheus)
# The console's end-to-end tests drive Debian's headless Chromium through its ChromeDriver.
command -v chromium >/dev/null || need+=(chromium)
command -v chromedriver >/dev/null || need+=(chromium-driver)
python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' || { echo "ensure-tools: Python 3.11+ is required" >&2; exit 1; }
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)

if ((${#need[@]})); then
  if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
    echo "ensure-tools: installing ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "ensure-tools: please install: ${need[*]}" >&2
    exit 1
  fi
fi
