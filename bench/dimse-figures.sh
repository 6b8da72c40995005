#!/usr/bin/env bash
# DIMSE figures side by side in one run against a fresh Orthanc on loopback:
#   C-FIND-backed ImagingStudy search vs findscu (study + series level, same keys),
#   cold whole-study WADO-RS by C-MOVE (time to first byte, to last byte) vs movescu -> storescp,
#   cold by C-GET vs getscu, warm (cached) throughput, and the facade's peak RSS.
# Usage: bench/dimse-figures.sh [scale] [runs]     (needs orthanc, dcmtk; build first)
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-1}"; runs="${2:-3}"
bin=$PWD/build/smart-imaging
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])'; }
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
now() { date +%s.%N; }
# Orthanc and the DCMTK command-line baselines get Nagle off too, unless PACS_NAGLE=1 (a PACS left as shipped).
[ -n "${PACS_NAGLE:-}" ] || export TCP_NODELAY=1

"$bin" samples --out "$work/samples" --seed 11 --scale "$scale" > "$work/samples.txt"
http=$(free_port); dicom=$(free_port); facade_dimse=$(free_port); facade_get_dimse=$facade_dimse
storescp_port=$(free_port); port=$(free_port)
mkdir -p "$work/orthanc" "$work/storescp"
cat > "$work/orthanc.json" <<JSON
{"Name":"bench","StorageDirectory":"$work/orthanc","IndexDirectory":"$work/orthanc","HttpPort":$http,"DicomPort":$dicom,
 "DicomAet":"ORTHANC","RemoteAccessAllowed":false,"AuthenticationEnabled":false,"Plugins":[],
 "DicomModalities":{"facade":["FACADE","127.0.0.1",$facade_dimse],"facadeget":["FACADEGET","127.0.0.1",$facade_dimse],
                    "storescp":["STORESCP","127.0.0.1",$storescp_port],"getscu":["GETSCU","127.0.0.1",1]},
 "DicomAlwaysAllowMove":true,"DicomAlwaysAllowGet":true,"DicomAlwaysAllowFind":true,"DicomCheckModalityHost":false,
 "StrictAetComparison":false}
JSON
Orthanc --verbose "$work/orthanc.json" > "$work/orthanc.log" 2>&1 & pids+=($!)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/system" >/dev/null && break; sleep 0.2; done
storescu +sd +r -aec ORTHANC 127.0.0.1 "$dicom" "$work/samples" >/dev/null 2>&1
mkdir -p "$work/config"
printf '{"authorization":{"type":"mock","disableAuthzChecks":true},"images":{"type":"dicom-dimse","lookup":"studies-by-mrn","endpoint":"dimse://127.0.0.1:%s","ae":"FACADE","calledAe":"ORTHANC"}}' "$dicom" > "$work/config/move.json"
printf '{"authorization":{"type":"mock","disableAuthzChecks":true},"images":{"type":"dicom-dimse","lookup":"studies-by-mrn","endpoint":"dimse://127.0.0.1:%s","ae":"FACADEGET","calledAe":"ORTHANC","retrieval":"c-get"}}' "$dicom" > "$work/config/get.json"
"$bin" serve --port "$port" --config-dir "$work/config" --dimse-dir "$work/cache" --dimse-port "$facade_dimse" --path-key bench > "$work/out" 2> "$work/err" & fpid=$!; pids+=($fpid)
for _ in $(seq 100); do grep -q "listening on http" "$work/out" && break; sleep 0.1; done
storescp --fork -aet STORESCP -od "$work/storescp" "$storescp_port" >/dev/null 2>&1 & pids+=($!)
sleep 0.5
mrn=293ee354-f8ad-4345-b10c-759fdfdcc082
base="http://127.0.0.1:$port"

# 1. Search: facade vs findscu at study level plus series level for each study.
find_baseline() {
  local t0; t0=$(now)
  findscu -S -aec ORTHANC -k QueryRetrieveLevel=STUDY -k PatientID="$mrn" -k StudyInstanceUID -k StudyDate -k StudyTime \
    -k StudyDescription -k AccessionNumber -k ReferringPhysicianName -k ModalitiesInStudy -k NumberOfStudyRelatedInstances \
    -k PatientName -X --output-directory "$work/find" 127.0.0.1 "$dicom" >/dev/null 2>&1 || true
  for f in "$work"/find/*; do
    uid=$(dcmdump +P StudyInstanceUID "$f" 2>/dev/null | sed 's/.*\[\(.*\)\].*/\1/')
    findscu -S -aec ORTHANC -k QueryRetrieveLevel=SERIES -k StudyInstanceUID="$uid" -k SeriesInstanceUID -k Modality \
      -k SeriesNumber -k SeriesDescription -k NumberOfSeriesRelatedInstances 127.0.0.1 "$dicom" >/dev/null 2>&1 || true
  done
  rm -rf "$work/find"; mkdir -p "$work/find"
  echo "$(now) - $t0" | bc
}
mkdir -p "$work/find"
# Each DCMTK tool run pays process start-up and dictionary loading; echoscu shows that share.
for _ in $(seq 5); do t0=$(now); echoscu -aec ORTHANC 127.0.0.1 "$dicom" >/dev/null 2>&1; echo "$(now) - $t0" | bc; done | median |
  awk '{printf "echoscu (one process + one association, the per-tool overhead): median %.1f ms\n", $1*1000}'
for _ in $(seq 5); do find_baseline; done | median | awk '{printf "findscu study+series (%s): median %.1f ms\n", "baseline", $1*1000}'
for _ in $(seq 5); do curl -s -o /dev/null -w '%{time_total}\n' "$base/move/fhir/ImagingStudy?patient=$mrn"; done | median |
  awk '{printf "facade ImagingStudy search (C-FIND): median %.1f ms\n", $1*1000}'

# 2. Cold retrieval of the largest study of that patient, each run on a fresh cache.
curl -s "$base/move/fhir/ImagingStudy?patient=$mrn" > "$work/b.json"
read -r study count < <(python3 -c "
import json;b=json.load(open('$work/b.json'));r=max((e['resource'] for e in b['entry']),key=lambda r:r['numberOfInstances']);print(r['id'],r['numberOfInstances'])")
bytes=$(cat $(find "$work/samples" -path "*$study*" -name '*.dcm') | wc -c)
echo "study: $count instances, $((bytes/1000000)) MB"
for _ in $(seq "$runs"); do
  rm -rf "$work/storescp"/*; t0=$(now)
  movescu -S -aec ORTHANC -aem STORESCP -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$study" 127.0.0.1 "$dicom" >/dev/null 2>&1
  echo "$(now) - $t0" | bc
done | median | awk '{printf "movescu -> storescp: median %.0f ms\n", $1*1000}'
for _ in $(seq "$runs"); do
  rm -rf "$work/get"; mkdir -p "$work/get"; t0=$(now)
  getscu -S -aet GETSCU -aec ORTHANC -od "$work/get" -k QueryRetrieveLevel=STUDY -k StudyInstanceUID="$study" 127.0.0.1 "$dicom" >/dev/null 2>&1
  echo "$(now) - $t0" | bc
done | median | awk '{printf "getscu: median %.0f ms\n", $1*1000}'
cold() {  # tenant
  local out=()
  for _ in $(seq "$runs"); do
    kill "$fpid"; wait "$fpid" 2>/dev/null || true; rm -rf "$work/cache"
    "$bin" serve --port "$port" --config-dir "$work/config" --dimse-dir "$work/cache" --dimse-port "$facade_dimse" --path-key bench > "$work/out" 2> "$work/err" & fpid=$!; pids+=($fpid)
    for _ in $(seq 100); do grep -q "listening on http" "$work/out" && break; sleep 0.05; done
    addr=$(curl -s "$base/$1/fhir/ImagingStudy?patient=$mrn&identifier=urn:oid:$study" | python3 -c "import json,sys;b=json.load(sys.stdin);print(b['entry'][0]['resource']['contained'][0]['address'].replace('localhost','127.0.0.1'))")
    curl -s -o /dev/null -w '%{time_starttransfer} %{time_total}\n' "$addr/studies/$study"
  done > "$work/cold-$1"
  awk '{print $1}' "$work/cold-$1" | median | awk -v t="$1" '{printf "facade cold %s: time to first byte median %.0f ms\n", t, $1*1000}'
  awk '{print $2}' "$work/cold-$1" | median | awk -v t="$1" '{printf "facade cold %s: time to last byte median %.0f ms\n", t, $1*1000}'
  for _ in $(seq "$runs"); do curl -s -o /dev/null -w '%{time_total}\n' "$addr/studies/$study"; done | median |
    awk -v b="$bytes" -v t="$1" '{printf "facade warm %s (cached): median %.0f ms, %.0f MB/s\n", t, $1*1000, b/$1/1e6}'
  echo "facade peak RSS: $(grep VmHWM /proc/$fpid/status | awk '{printf "%.0f MB", $2/1024}')"
}
cold move
cold get
echo "C-MOVE requests seen by Orthanc: $(grep -c 'Move-SCU request received' "$work/orthanc.log" || true)"
