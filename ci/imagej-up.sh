#!/usr/bin/env bash
# Install ImageJ and a virtual X display on this Debian machine, for brightflow's ImageJ tests.
#
#   sudo ci/imagej-up.sh           # then: BRIGHTFLOW_REQUIRE_IMAGEJ=1 make test
#
# - Installs imagej (Debian's ImageJ 1.x: /usr/share/java/ij.jar and a Java runtime), xvfb
#   (xvfb-run) and xauth with apt-get (--no-install-recommends) when they are missing. Needs
#   root only to install; when everything is there it installs nothing.
# - Idempotent: safe to run again. Nothing is started and nothing stays running, so there is
#   no imagej-down.sh.
# - Ends by running ImageJ once under xvfb-run (a macro that prints its version), so a broken
#   installation fails here, with ImageJ's output, rather than in the tests.
set -euo pipefail

JAR=/usr/share/java/ij.jar

log() { echo "imagej-up: $*" >&2; }
# shellcheck source=ci/apt-install.sh
. "$(dirname "$0")/apt-install.sh"

# --- packages ---------------------------------------------------------------------------------
missing=()
[ -f "$JAR" ] && command -v java >/dev/null 2>&1 || missing+=(imagej)
command -v xvfb-run >/dev/null 2>&1 || missing+=(xvfb)
command -v xauth >/dev/null 2>&1 || missing+=(xauth)
if [ ${#missing[@]} -gt 0 ]; then
    install_missing "${missing[@]}"
else
    log "imagej, xvfb and xauth already installed"
fi

# --- does ImageJ start? -------------------------------------------------------------------------
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
echo 'print("ImageJ " + getVersion());' >"$scratch/version.ijm"
started=$(date +%s%N)
if ! output=$(timeout 120 xvfb-run -a java -Xmx256m -Duser.home="$scratch" -jar "$JAR" -batch "$scratch/version.ijm" 2>&1) \
    || ! grep -q '^ImageJ ' <<<"$output"; then
    log "ImageJ did not start under xvfb-run; its output:"
    echo "$output" >&2
    exit 1
fi
ms=$((($(date +%s%N) - started) / 1000000))
log "$(grep '^ImageJ ' <<<"$output") ($JAR) starts under xvfb-run: $((ms / 1000)).$((ms % 1000 / 100)) s"
