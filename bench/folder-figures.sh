#!/usr/bin/env bash
# Figures for the folder source, side by side in one run: start-up with a sample set,
# ImagingStudy latency, whole-study WADO-RS throughput against `cat` of the same files,
# and the server's peak RSS while streaming. Usage: bench/folder-figures.sh [scale] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
scale="${1:-10}"; runs="${2:-5}"
bin=build/smart-imaging
work=$(mktemp -d); trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
"$bin" samples --out "$work/samples" --seed 3 --scale "$scale" >/dev/null
mkdir -p "$work/config"
printf '{"authorization":{"type":"mock","disableAuthzChecks":true},"images":{"type":"folder","path":"%s","lookup":"all-studies-on-server"}}' \
  "$work/samples" > "$work/config/open.json"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$bin" serve --port "$port" --config-dir "$work/config" --dimse-dir "$work/cache" --path-key bench >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on http" "$work/out" && break; sleep 0.1; done
echo "start-up (cold index): $(grep -o 'ready in [0-9]* ms' "$work/out") for $(find "$work/samples" -name '*.dcm' | wc -l) files"
base="http://127.0.0.1:$port/open"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for _ in $(seq 20); do curl -s -o /dev/null -w '%{time_total}\n' "$base/fhir/ImagingStudy?patient=293ee354-f8ad-4345-b10c-759fdfdcc082"; done |
  median | awk '{printf "ImagingStudy search (one patient, 3 studies): median %.1f ms\n", $1*1000}'
curl -s "$base/fhir/ImagingStudy?patient=x&_count=100" > "$work/bundle.json"
read -r url uid < <(python3 - "$work/bundle.json" "$port" <<'PY'
import json,sys
b=json.load(open(sys.argv[1]))
r=max((e['resource'] for e in b['entry']), key=lambda r: r['numberOfInstances'])
print(r['contained'][0]['address'].replace('localhost','127.0.0.1')+'/studies/'+r['id'], r['id'])
PY
)
files=$(find "$work/samples" -path "*$uid*" -name '*.dcm')
bytes=$(cat $files | wc -c)
cat $files >/dev/null
for _ in $(seq "$runs"); do /usr/bin/time -f '%e' cat $files 2>&1 >/dev/null; done | median |
  awk -v b="$bytes" '{printf "cat of the same %d files: %.0f MB/s\n", 0, b/$1/1e6}' | sed "s/ 0 files/ $(echo $files | wc -w) files/"
for _ in $(seq "$runs"); do curl -s -o /dev/null -w '%{time_total} %{time_starttransfer}\n' "$url"; done > "$work/times"
awk '{print $1}' "$work/times" | median | awk -v b="$bytes" '{printf "WADO-RS whole study (%.1f MB): median %.0f ms, %.0f MB/s\n", b/1e6, $1*1000, b/$1/1e6}'
awk '{print $2}' "$work/times" | median | awk '{printf "time to first byte: median %.1f ms\n", $1*1000}'
echo "peak RSS of the server: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MB"}')"
