#!/usr/bin/env bash
# Installs what building and testing smart-imaging needs on Debian 12 (run as root).
# Idempotent: packages already present are left alone.
set -euo pipefail
packages=(cmake g++ make pkg-config git ca-certificates curl
          libdcmtk-dev dcmtk libpistache-dev rapidjson-dev libcjose-dev libjansson-dev
          libcurl4-openssl-dev libsqlite3-dev libssl-dev libgtest-dev python3-pydicom
          libpng-dev orthanc orthanc-dicomweb chromium chromium-driver wrk)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node runs the black-box tests; keep a Node the machine already has (it may come with its own npm).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then missing+=(nodejs npm); fi
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Orthanc is a test peer, started by the tests themselves: never as a system service.
  if command -v systemctl >/dev/null && systemctl is-active --quiet orthanc 2>/dev/null; then systemctl stop orthanc || true; fi
fi
