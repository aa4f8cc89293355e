# Sourced by scripts: installs, with apt-get, the Debian packages whose commands or files are missing.
#   install_missing command-or-/path:package [command-or-/path:package ...]
install_missing() {
    local need=() pair what sudo=""
    for pair in "$@"; do
        what=${pair%%:*}
        if [[ $what == /* ]]; then [ -e "$what" ]; else command -v "$what" >/dev/null 2>&1; fi ||
            need+=("${pair#*:}")
    done
    [ ${#need[@]} -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
}

# What building spiped needs beyond Rust: a C compiler, and pkg-config with OpenSSL's headers for the
# default AEAD backend (the `openssl` feature).
install_build_deps() {
    install_missing cc:gcc pkg-config:pkg-config /usr/include/openssl/evp.h:libssl-dev
}
