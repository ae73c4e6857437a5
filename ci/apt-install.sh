# Sourced by ci/slurm-up.sh, ci/imagej-up.sh and ci/chromium-up.sh (after they define `log`).
#
#   install_missing PACKAGE...   installs the Debian packages given (those the caller found missing)
#                                with apt-get --no-install-recommends; without root it stops with a
#                                message that says so.

install_missing() {
    [ $# -gt 0 ] || return 0
    if [ "$(id -u)" != 0 ]; then
        log "$* missing; run me as root to install them"
        exit 1
    fi
    log "installing $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
