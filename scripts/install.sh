# Sourced by the scripts that need something from Debian's packages.

# Installs Debian packages, as root or through sudo.
apt_install() {
    local sudo=""
    if [ "$(id -u)" -ne 0 ]; then
        sudo="sudo"
    fi
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "${0##*/}: $* missing and no apt-get to install it; install it first" >&2
        exit 1
    fi
    echo "${0##*/}: installing $* from Debian's packages" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}
