#!/usr/bin/env bash
# Installs the peers that `npm run bench:compare` measures nodeset against
# (nats-server and redis-server, from the system's packages) when missing.
# The brokers are started by the benchmark itself, on free ports, and stopped
# when it ends; the benchmark never uses a system service.
set -euo pipefail
missing=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || missing+=(nats-server)
command -v redis-server >/dev/null 2>&1 || [ -x /usr/bin/redis-server ] || missing+=(redis-server)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "bench peers present: nats-server, redis-server"
  exit 0
fi
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
echo "installed: ${missing[*]}"
