#!/usr/bin/env bash
# Makes sure the commands the tests call are installed (run by `npm test` before the tests).
# As root it installs what is missing with apt-get; otherwise it says what to install and fails,
# so a missing tool shows up here once instead of as a failure in every test that needs it.
# Silent when everything is present.
set -euo pipefail
# nginx, haproxy, ip, sysctl and ethtool live in sbin, which an ordinary user's PATH may lack.
export PATH="${PATH}:/usr/sbin:/sbin"

# command   Debian package providing it
REQUIRED="
tshark      tshark
editcap     wireshark-common
ip          iproute2
sysctl      procps
ethtool     ethtool
ping        iputils-ping
curl        curl
wrk         wrk
nginx       nginx-light
haproxy     haproxy
keepalived  keepalived
tc          iproute2
nft         nftables
socat       socat
sz          lrzsz
mosquitto   mosquitto
mosquitto_sub mosquitto-clients
mosquitto_passwd mosquitto-clients
openssl     openssl
snmpwalk    snmp
snmpget     snmp
snmptable   snmp
snmptranslate snmp
snmptrapd   snmptrapd
"

missing_packages=()
missing_commands=()
while read -r cmd pkg; do
  [[ -z "${cmd}" ]] && continue
  if ! command -v "${cmd}" >/dev/null 2>&1; then
    missing_commands+=("${cmd}")
    missing_packages+=("${pkg}")
  fi
done <<<"${REQUIRED}"

[[ ${#missing_commands[@]} -eq 0 ]] && exit 0

if [[ ${EUID} -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-test-deps: missing commands needed by the tests: ${missing_commands[*]}" >&2
  echo "ensure-test-deps: install them as root with:" >&2
  echo "  apt-get update && apt-get install -y ${missing_packages[*]}" >&2
  exit 1
fi

echo "ensure-test-deps: installing ${missing_packages[*]} for: ${missing_commands[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# wireshark-common otherwise asks whether non-root users may capture; tests only read files.
if command -v debconf-set-selections >/dev/null 2>&1; then
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
fi
# nginx and haproxy start their system service after installing; the tests run their own instances
# in network namespaces, and a service that fails to start (port 80 taken, no IPv6) would fail the
# install. A policy-rc.d that forbids every start (exit 101) keeps them stopped, as Docker images do.
policy=/usr/sbin/policy-rc.d
if [[ ! -e "${policy}" ]]; then
  trap 'rm -f "${policy}"' EXIT
  printf '#!/bin/sh\n# added by flowswitch tools/ensure-test-deps.sh for the time of apt-get install\nexit 101\n' >"${policy}"
  chmod 755 "${policy}"
fi
apt-get update -q >&2
apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing_packages[@]}" >&2 </dev/null

still_missing=()
for cmd in "${missing_commands[@]}"; do
  command -v "${cmd}" >/dev/null 2>&1 || still_missing+=("${cmd}")
done
if [[ ${#still_missing[@]} -gt 0 ]]; then
  echo "ensure-test-deps: still missing after installation: ${still_missing[*]}" >&2
  exit 1
fi
