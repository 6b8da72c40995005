#!/usr/bin/env bash
# Figures for frames, rendering and transcoding on a folder source (local files, so
# "cached data"): frame requests per second with wrk, rendered/thumbnail latency and
# transcoding time per instance with curl. Usage: bench/pixel-figures.sh [seconds] [runs]
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${1:-5}"; runs="${2:-20}"
bin=build/smart-imaging
work=$(mktemp -d); trap 'kill "${pid:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT
mrn=293ee354-f8ad-4345-b10c-759fdfdcc082
"$bin" samples --out "$work/samples" --seed 3 --scale 0.2 >/dev/null
"$bin" samples --out "$work/samples" --pixel-variants "$mrn" >/dev/null
mkdir -p "$work/config"
printf '{"authorization":{"type":"mock","disableAuthzChecks":true},"images":{"type":"folder","path":"%s","lookup":"all-studies-on-server"}}' \
  "$work/samples" > "$work/config/open.json"
port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
"$bin" serve --port "$port" --config-dir "$work/config" --dimse-dir "$work/cache" --path-key bench >"$work/out" 2>"$work/err" &
pid=$!
for _ in $(seq 100); do grep -q "listening on http" "$work/out" && break; sleep 0.1; done
curl -s "http://127.0.0.1:$port/open/fhir/ImagingStudy?patient=x&_count=100" > "$work/bundle.json"
# URL of an instance: a 256x256 CT slice and the JPEG-LS multi-frame pixel variant.
python3 - "$work/bundle.json" "$work/samples" > "$work/urls" <<'PY'
import json, sys, os, glob
b = json.load(open(sys.argv[1]))
roots = {e['resource']['id']: e['resource']['contained'][0]['address'].replace('localhost', '127.0.0.1')
         for e in b['entry'] if e['resource']['resourceType'] == 'ImagingStudy'}
def url(f):
    sop = os.path.basename(f)[:-4]; series = os.path.basename(os.path.dirname(f))
    study = os.path.basename(os.path.dirname(os.path.dirname(f)))
    return f"{roots[study]}/studies/{study}/series/{series}/instances/{sop}", f"{roots[study]}/studies/{study}/series/{series}"
ct = next(f for f in sorted(glob.glob(sys.argv[2] + '/*/*/*/*.dcm')) if os.path.getsize(f) > 100000)
ls = glob.glob(sys.argv[2] + '/*/2.25.31415926535897932384626433.1/*.3/*.dcm')[0]
print(*url(ct)); print(*url(ls))
PY
read -r ct ct_series < <(sed -n 1p "$work/urls")
read -r ls _ < <(sed -n 2p "$work/urls")
# Every URL measured must answer 200 (wrk counts errors as requests too).
check() {
  code=$(curl -s -o /dev/null -H "accept: $2" -w '%{http_code}' "$1")
  [ "$code" = 200 ] || { echo "GET $1 ($2) answered $code" >&2; exit 1; }
}
median() { sort -n | awk '{a[NR]=$1} END {printf "%.1f", a[int((NR+1)/2)]*1000}'; }
lat() { check "$1" "$2"; for _ in $(seq "$runs"); do curl -s -o /dev/null -H "accept: $2" -w '%{time_total}\n' "$1"; done | median; }
rps() { check "$1" "$2"; wrk -t1 -c4 -d"${secs}s" -H "accept: $2" "$1" | awk '/Requests\/sec/ {print $2}'; }
echo "frames, CT 256x256 16-bit native, default (explicit VR LE): $(rps "$ct/frames/1" 'multipart/related; type=application/octet-stream') req/s"
echo "frames, JPEG-LS 64x48 3 frames, transfer-syntax=* (stored bitstream): $(rps "$ls/frames/2" 'multipart/related; type=application/octet-stream; transfer-syntax=*') req/s"
echo "frames, JPEG-LS decoded to explicit VR LE: $(rps "$ls/frames/2" 'multipart/related; type=application/octet-stream') req/s"
echo "thumbnail of the CT instance (128 px JPEG): median $(lat "$ct/thumbnail" image/jpeg) ms"
echo "thumbnail of the CT series (middle instance): median $(lat "$ct_series/thumbnail" image/jpeg) ms"
echo "rendered CT 256x256 JPEG: median $(lat "$ct/rendered" image/jpeg) ms, PNG: median $(lat "$ct/rendered" image/png) ms"
echo "thumbnail requests per second (CT instance): $(rps "$ct/thumbnail" image/jpeg) req/s"
for t in 1.2.840.10008.1.2.4.70 1.2.840.10008.1.2.4.80 1.2.840.10008.1.2.5; do
  echo "transcode the CT instance to $t: median $(lat "$ct" "multipart/related; type=\"application/dicom\"; transfer-syntax=$t") ms"
done
echo "peak RSS of the server: $(grep VmHWM /proc/$pid/status | awk '{print $2/1024 " MB"}')"
