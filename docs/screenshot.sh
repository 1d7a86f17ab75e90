#!/usr/bin/env bash
# Re-take the README screenshots: start the app headless, let Debian's Chromium render each page.
# Usage: bash docs/screenshot.sh   (needs `apt-get install chromium`)
set -euo pipefail
cd "$(dirname "$0")/.."
port=8765
streamlit run app.py --server.headless true --server.port "$port" --browser.gatherUsageStats false >/tmp/purify-screenshot.log 2>&1 &
server=$!
trap 'kill $server' EXIT
for _ in $(seq 60); do curl -sf "http://127.0.0.1:$port/_stcore/health" >/dev/null && break; sleep 1; done
shoot() {  # shoot NAME URL-PATH
  chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run --disable-background-networking \
    --disable-component-update --disable-sync --user-data-dir="$(mktemp -d)" --hide-scrollbars \
    --window-size=1400,1000 --virtual-time-budget=90000 --run-all-compositor-stages-before-draw --screenshot="docs/screenshots/$1.png" "http://127.0.0.1:$port/$2" 2>/dev/null
}
shoot home "?scenario=mnist5k-smallcnn-badnets"  # warm-up: the first run imports torch and fills the caches
sleep 30
shoot home "?scenario=mnist5k-smallcnn-badnets"
