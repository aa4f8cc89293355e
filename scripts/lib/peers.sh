# Sourced by scripts: installs, with apt-get, the Debian packages whose commands or files are missing.
#   install_missing command-or-/path:package [command-or-/path:package ...]
# Nothing it installs is started as a system service (sshd is not even enabled): the tests start their
# own redis-server and sshd on loopback ports, and a system one (redis on 6379, sshd on 22) is in the way.
install_missing() {
    local need=() pair what sudo="" status=0
    for pair in "$@"; do
        what=${pair%%:*}
        if [[ $what == /* ]]; then [ -e "$what" ]; else command -v "$what" >/dev/null 2>&1; fi ||
            need+=("${pair#*:}")
    done
    [ ${#need[@]} -gt 0 ] || return 0
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "installing: ${need[*]}"
    $sudo apt-get update -qq
    forbid_service_starts "$sudo"
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null ||
        status=$?
    allow_service_starts "$sudo"
    [ "$status" -eq 0 ] || return "$status"
    if [[ " ${need[*]} " == *" openssh-server "* ]]; then keep_sshd_off "$sudo"; fi
}

# Maintainer scripts start their services through invoke-rc.d, which first asks /usr/sbin/policy-rc.d:
# while it answers 101 ("action forbidden"), nothing starts. The policy in place before (a container
# image often has one) is kept aside and put back by allow_service_starts; with none before, none after.
POLICY_RC_D=/usr/sbin/policy-rc.d
POLICY_RC_D_SAVED=/usr/sbin/policy-rc.d.before-install-missing
forbid_service_starts() {
    local sudo=$1
    # A saved policy already there is the one from before an install that was interrupted: keep it.
    if [ -e "$POLICY_RC_D_SAVED" ]; then
        $sudo rm -f "$POLICY_RC_D"
    elif [ -e "$POLICY_RC_D" ]; then
        $sudo mv "$POLICY_RC_D" "$POLICY_RC_D_SAVED"
    fi
    printf '#!/bin/sh\n# scripts/lib/peers.sh: no service starts while packages install\nexit 101\n' |
        $sudo tee "$POLICY_RC_D" >/dev/null
    $sudo chmod 755 "$POLICY_RC_D"
}
allow_service_starts() {
    local sudo=$1
    $sudo rm -f "$POLICY_RC_D"
    if [ -e "$POLICY_RC_D_SAVED" ]; then $sudo mv "$POLICY_RC_D_SAVED" "$POLICY_RC_D"; fi
}

# openssh-server's postinst (Debian 12) writes /etc/ssh/sshd_config and host keys, adds the sshd user, and
# enables the ssh service for boot: rc links (update-rc.d defaults), systemd's ssh.service symlink
# (deb-systemd-helper enable) and runit's link; it would also start it, which the policy above forbade.
# Undo the enabling, offline, and leave the file that Debian's init script, systemd units and runit service
# all check before they start sshd; tests/ssh.rs runs /usr/sbin/sshd itself with its own configuration.
keep_sshd_off() {
    local sudo=$1 runit=/etc/runit/runsvdir/default
    $sudo touch /etc/ssh/sshd_not_to_be_run
    $sudo update-rc.d ssh disable >/dev/null
    # runit-helper leaves an admin's "disabled" (a dot-named link) alone on upgrades.
    if [ -L "$runit/ssh" ]; then $sudo mv -T "$runit/ssh" "$runit/.ssh"; fi
}

# What building spiped needs beyond Rust: a C compiler, and pkg-config with OpenSSL's headers for the
# default AEAD backend (the `openssl` feature).
install_build_deps() {
    install_missing cc:gcc pkg-config:pkg-config /usr/include/openssl/evp.h:libssl-dev
}
