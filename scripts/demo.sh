#!/usr/bin/env bash
# One command for a newcomer: install, build, generate sample studies, start a local
# PACS (DCMTK's dcmqrscp, loaded with the samples) and the facade on the embedded
# default (config/: an open folder tenant, a fixed-patient tenant, and a tenant
# over the local PACS by C-MOVE), and print requests to try. Ctrl-C stops both.
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
DIMSE_PORT="${DIMSE_PORT:-30104}"
# The local PACS (config/local-pacs.json points at it): it must know our AE title,
# host and port to C-MOVE to us. Nagle off on its side too (see README).
mkdir -p var/pacs/db
cat > var/pacs/dcmqrscp.cfg <<CFG
NetworkTCPPort  = 11112
MaxPDUSize      = 65536
MaxAssociations = 16
HostTable BEGIN
smartimg = (SMARTIMG, 127.0.0.1, $DIMSE_PORT)
HostTable END
VendorTable BEGIN
VendorTable END
AETable BEGIN
DEMOPACS $PWD/var/pacs/db RW (1000, 4096mb) ANY
AETable END
CFG
TCP_NODELAY=1 dcmqrscp -c var/pacs/dcmqrscp.cfg &
pacs=$!
./build/smart-imaging serve --port "$PORT" --config-dir config --dimse-dir var/cache --dimse-port "$DIMSE_PORT" &
server=$!
trap 'kill "$server" "$pacs" 2>/dev/null; wait "$server" "$pacs" 2>/dev/null' EXIT INT TERM
for _ in $(seq 50); do echoscu -aec DEMOPACS 127.0.0.1 11112 >/dev/null 2>&1 && break; sleep 0.1; done
if [ ! -f var/pacs/loaded ]; then
  TCP_NODELAY=1 storescu +sd +r -aec DEMOPACS 127.0.0.1 11112 var/samples >/dev/null 2>&1 && touch var/pacs/loaded
fi
base="http://127.0.0.1:$PORT"
for _ in $(seq 50); do curl -sf "$base/healthz" >/dev/null && break; sleep 0.1; done
patient=87a339d0-8cae-418e-89c7-8651e6aab3c6
wado=$(curl -s "$base/sandbox-patient/fhir/ImagingStudy?patient=$patient" |
       grep -o '"address":"[^"]*"' | head -1 | sed 's/"address":"//;s/"$//' || true)
study=$(curl -s "$base/sandbox-patient/fhir/ImagingStudy?patient=$patient" |
        grep -o '"id":"2\.25\.[0-9]*"' | head -1 | sed 's/"id":"//;s/"$//' || true)
mrn=293ee354-f8ad-4345-b10c-759fdfdcc082
pacs_search=$(curl -s "$base/local-pacs/fhir/ImagingStudy?patient=$mrn" || true)
pacs_wado=$(echo "$pacs_search" | grep -o '"address":"[^"]*"' | head -1 | sed 's/"address":"//;s/"$//' || true)
pacs_study=$(echo "$pacs_search" | grep -o '"id":"2\.25\.[0-9]*"' | head -1 | sed 's/"id":"//;s/"$//' || true)
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
  # DICOMweb for viewers under the same address: QIDO-RS, a thumbnail, a rendered PNG
  curl -s '$wado/studies/$study/series'
  curl -s -o thumbnail.jpg '$wado/studies/$study/thumbnail'
  curl -s -o rendered.png -H 'Accept: image/png' '$wado/studies/$study/rendered?viewport=256,256'
  # the same studies from the local PACS: C-FIND for the search, C-MOVE into the cache on first retrieval
  curl -s '$base/local-pacs/fhir/ImagingStudy?patient=$mrn'
  curl -s -o pacs-study.multipart -w '%{http_code} %{size_download} bytes in %{time_total} s\n' '$pacs_wado/studies/$pacs_study'

Press Ctrl-C to stop.
TRY
wait "$server"
