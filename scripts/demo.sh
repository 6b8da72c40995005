#!/usr/bin/env bash
# One command for a newcomer: install, build, generate sample studies, start the
# facade on the embedded default (config/: an open tenant and a fixed-patient
# tenant over var/samples), and print requests to try. Ctrl-C stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
bash scripts/build.sh
mkdir -p var
[ -d var/samples ] || ./build/smart-imaging samples --out var/samples --seed 1
# A persistent demo key, so study tokens survive a restart of the demo.
[ -s var/path-key ] || head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > var/path-key
export PATH_KEY="$(cat var/path-key)"
PORT="${PORT:-8000}"
./build/smart-imaging serve --port "$PORT" --config-dir config --dimse-dir var/cache &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null' EXIT INT TERM
base="http://localhost:$PORT"
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
patient=87a339d0-8cae-418e-89c7-8651e6aab3c6
wado=$(curl -s "$base/sandbox-patient/fhir/ImagingStudy?patient=$patient" |
       grep -o '"address":"[^"]*"' | head -1 | sed 's/"address":"//;s/"$//')
study=$(curl -s "$base/sandbox-patient/fhir/ImagingStudy?patient=$patient" |
        grep -o '"id":"2\.25\.[0-9]*"' | head -1 | sed 's/"id":"//;s/"$//')
cat <<TRY

smart-imaging is running at $base with sample studies in var/samples. Try:

  # FHIR: what this server offers, and the sandbox patient's studies (mock tenant bound to one patient)
  curl -s $base/sandbox-patient/fhir/metadata
  curl -s '$base/sandbox-patient/fhir/ImagingStudy?patient=$patient'
  # the open tenant: any patient, every study on the server; CT only, endpoints as separate entries
  curl -s '$base/open/fhir/ImagingStudy?patient=any&modality=CT&_include=ImagingStudy:endpoint'
  # WADO-RS with the Endpoint address from a search (a study token, valid 24 h)
  curl -s -o study.multipart '$wado/studies/$study'
  curl -s '$wado/studies/$study/metadata'

Press Ctrl-C to stop.
TRY
wait "$server"
