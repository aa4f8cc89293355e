# Shared by scripts/test-systemd and scripts/test-packages: a debootstrapped Debian 12 booted with
# systemd-nspawn in its own network namespace, and `ct` to run commands inside it.
# Source it, then: need_root_and_tools; ensure_rootfs DIR; boot_container DIR; ... (cleanup on EXIT).

fail() { echo "$(basename "$0"): FAIL: $*" >&2; exit 1; }
pass() { echo "$(basename "$0"): ok: $*"; }

need_root_and_tools() {
    [ "$(id -u)" -eq 0 ] || fail "must run as root (systemd-nspawn)"
    local need=()
    command -v debootstrap >/dev/null || need+=(debootstrap)
    command -v systemd-nspawn >/dev/null || need+=(systemd-container)
    if [ ${#need[@]} -gt 0 ]; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
    fi
}

# A Debian 12 tree with systemd and Redis, made once and reused (delete it to start afresh).
ensure_rootfs() {
    local rootfs=$1
    if [ ! -e "$rootfs/.spiped-rootfs-ready" ]; then
        echo "$(basename "$0"): debootstrapping Debian 12 into $rootfs (about a minute)"
        rm -rf "$rootfs"
        debootstrap --variant=minbase \
            --include=systemd,systemd-sysv,dbus,redis-server,redis-tools,iproute2,procps \
            bookworm "$rootfs" http://deb.debian.org/debian >/dev/null
        touch "$rootfs/.spiped-rootfs-ready"
    fi
}

# Boots the tree and waits for systemd; sets $leader (the container's PID 1 as seen from here).
boot_container() {
    local rootfs=$1
    container_log=$(mktemp)
    systemd-nspawn -b --register=no --keep-unit --private-network -D "$rootfs" \
        --machine="spiped-test-$$" >"$container_log" 2>&1 &
    nspawn=$!
    leader=""
    trap stop_container EXIT
    for _ in $(seq 150); do
        leader=$(ps -o pid= --ppid "$nspawn" | head -n1 | tr -d ' ' || true)
        [ -n "$leader" ] && [ "$(readlink "/proc/$leader/exe" 2>/dev/null)" = /usr/lib/systemd/systemd ] && break
        leader=""
        sleep 0.2
    done
    [ -n "$leader" ] || { cat "$container_log"; fail "the container did not boot"; }
    # systemctl prints "offline" until it can reach PID 1's bus, which appears a moment after PID 1
    # starts (seconds on a fresh machine's first boot), so only another answer ends the wait. The
    # whole wait, `--wait` for the boot to finish included, is bounded by one deadline.
    local state="" started=$SECONDS deadline=$((SECONDS + 180))
    local left
    while left=$((deadline - SECONDS)) && [ $left -gt 0 ]; do
        state=$(ct timeout $left systemctl is-system-running --wait 2>/dev/null || true)
        case "$state" in "" | offline) sleep 1 ;; *) break ;; esac
    done
    case "$state" in
        running | degraded) pass "systemd booted in the container ($state)" ;;
        *) cat "$container_log"; fail "system state ${state:-unknown} after $((SECONDS - started)) s" ;;
    esac
}

stop_container() {
    if [ -n "${leader:-}" ]; then ct systemctl poweroff >/dev/null 2>&1 || true; fi
    for _ in $(seq 100); do kill -0 "$nspawn" 2>/dev/null || break; sleep 0.2; done
    kill "$nspawn" 2>/dev/null || true
    wait "$nspawn" 2>/dev/null || true
    rm -f "$container_log"
    [ -z "${cleanup_dir:-}" ] || rm -rf "$cleanup_dir"
}

ct() { nsenter -t "$leader" -a "$@"; }
show() { ct systemctl show -p "$2" --value "$1"; }
# This boot's journal of a unit (the tree keeps the journals of earlier runs).
journal() { ct journalctl --no-pager -q -b -u "$1"; }
# Whether a unit's journal (this boot) has a line with the text. grep reads to the end: with pipefail,
# an early exit (grep -q) would fail the pipe when journalctl gets SIGPIPE.
in_journal() { journal "$1" | grep -F -- "$2" >/dev/null; }
wait_for() { # description, command...
    local what=$1; shift
    for _ in $(seq 100); do "$@" && return 0; sleep 0.2; done
    fail "$what"
}
