#!/usr/bin/env bash
# Install Debian's Chromium on this machine, for brightflow's browser tests (the brightness
# explorer pages, tests/test_explorer.py).
#
#   sudo ci/chromium-up.sh         # then: BRIGHTFLOW_REQUIRE_BROWSER=1 make test
#
# - Installs chromium (Debian's package: /usr/bin/chromium) and fonts-dejavu-core (a font for
#   the pages' text; without any font, text renders as empty boxes) with apt-get
#   --no-install-recommends when they are missing. Needs root only to install; when everything is
#   there it installs nothing. No browser is ever downloaded from elsewhere.
# - Idempotent: safe to run again. Nothing is started and nothing stays running, so there is
#   no chromium-down.sh.
# - Ends by starting chromium --headless once on a small page (printing its DOM), so a broken
#   installation fails here, with chromium's output, rather than in the tests.
set -euo pipefail

CHROMIUM=/usr/bin/chromium

log() { echo "chromium-up: $*" >&2; }
# shellcheck source=ci/apt-install.sh
. "$(dirname "$0")/apt-install.sh"

# --- packages ---------------------------------------------------------------------------------
missing=()
[ -x "$CHROMIUM" ] || missing+=(chromium)
dpkg -s fonts-dejavu-core >/dev/null 2>&1 || missing+=(fonts-dejavu-core)
if [ ${#missing[@]} -gt 0 ]; then
    install_missing "${missing[@]}"
else
    log "chromium and fonts-dejavu-core already installed"
fi

# --- does chromium start headless? --------------------------------------------------------------
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo '<title>t</title><p id="p">brightflow-chromium-ok</p>' >"$scratch/page.html"
started=$(date +%s%N)
# the flags of tests/browser_helpers.py: root needs --no-sandbox; without the background-networking
# flags chromium tries to reach Google's servers
if ! output=$(timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
    --disable-background-networking --disable-component-update --disable-sync \
    --user-data-dir="$scratch/profile" --dump-dom "file://$scratch/page.html" 2>&1) \
    || ! grep -q 'brightflow-chromium-ok' <<<"$output"; then
    log "chromium --headless did not start or render a page; its output:"
    echo "$output" >&2
    exit 1
fi
ms=$((($(date +%s%N) - started) / 1000000))
log "$("$CHROMIUM" --version 2>/dev/null | head -1) ($CHROMIUM) renders a page headless: $((ms / 1000)).$((ms % 1000 / 100)) s"
