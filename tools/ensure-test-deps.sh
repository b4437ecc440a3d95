#!/usr/bin/env bash
# Makes sure the commands the tests call are installed (run by `npm test` before the tests).
# As root it installs what is missing with apt-get; otherwise it says what to install and fails,
# so a missing tool shows up here once instead of as a failure in every test that needs it.
# Silent when everything is present.
set -euo pipefail

# command   Debian package providing it
REQUIRED="
tshark      tshark
editcap     wireshark-common
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
apt-get update -q >&2
apt-get install -y -q "${missing_packages[@]}" >&2

still_missing=()
for cmd in "${missing_commands[@]}"; do
  command -v "${cmd}" >/dev/null 2>&1 || still_missing+=("${cmd}")
done
if [[ ${#still_missing[@]} -gt 0 ]]; then
  echo "ensure-test-deps: still missing after installation: ${still_missing[*]}" >&2
  exit 1
fi
