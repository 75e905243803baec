# shellcheck shell=bash
# Helpers shared by masq's scripts (setup.sh, test.sh, demo.sh). Source it; don't run it.
#
# Everything here is side-effect free except the PATH fix-up in masq_cargo_path.

# The Rust toolchain masq needs: bindgen 0.72+ emits `unsafe extern "C"` blocks (Rust 1.82).
# shellcheck disable=SC2034 # used by the scripts that source this file
MASQ_MIN_CARGO="1.82"
# Hugepage memory (MB) one test masqd asks for with `-m`; the hugepage test pass needs this
# much free. Keep in step with eal_mem_args() in dataplane/tests/common/mod.rs.
# shellcheck disable=SC2034
MASQ_TEST_MEM_MB=512

masq_log() { printf '%s\n' "$*"; }
masq_warn() { printf 'WARNING: %s\n' "$*" >&2; }
masq_die() {
    printf 'ERROR: %s\n' "$*" >&2
    exit 1
}
masq_section() { printf '\n==> %s\n' "$*"; }

masq_is_root() { [ "$(id -u)" -eq 0 ]; }

# cargo from rustup lives in ~/.cargo/bin, which a non-login shell (CI) may not have on PATH.
masq_cargo_path() {
    if ! command -v cargo >/dev/null 2>&1; then
        local home="${CARGO_HOME:-${HOME:-/root}/.cargo}"
        if [ -x "$home/bin/cargo" ]; then
            PATH="$home/bin:$PATH"
            export PATH
        fi
    fi
}

# Prints cargo's version (e.g. 1.95.0), or nothing if cargo is missing.
masq_cargo_version() {
    command -v cargo >/dev/null 2>&1 || return 0
    cargo --version 2>/dev/null | awk '{print $2}'
}

# True if version $1 >= version $2 (dotted numbers; compares major.minor).
masq_version_ge() {
    local a_major a_minor b_major b_minor
    IFS=. read -r a_major a_minor _ <<<"$1"
    IFS=. read -r b_major b_minor _ <<<"$2"
    a_minor="${a_minor%%[!0-9]*}"
    b_minor="${b_minor%%[!0-9]*}"
    [ "${a_major:-0}" -gt "${b_major:-0}" ] ||
        { [ "${a_major:-0}" -eq "${b_major:-0}" ] && [ "${a_minor:-0}" -ge "${b_minor:-0}" ]; }
}

# Free hugepage memory in MB (0 if none, or if no hugetlbfs is mounted to use it).
masq_hugepages_free_mb() {
    if ! awk '$3 == "hugetlbfs" { found = 1 } END { exit !found }' /proc/mounts 2>/dev/null; then
        echo 0
        return
    fi
    awk '/^HugePages_Free:/ { free = $2 } /^Hugepagesize:/ { size = $2 }
         END { printf "%d\n", free * size / 1024 }' /proc/meminfo 2>/dev/null || echo 0
}

# The cargo target directory, absolute (honours CARGO_TARGET_DIR, relative to the repo root).
masq_target_dir() {
    local root="$1" dir="${CARGO_TARGET_DIR:-target}"
    case "$dir" in
    /*) printf '%s\n' "$dir" ;;
    *) printf '%s\n' "$root/$dir" ;;
    esac
}

# masq_wait_ready PID LOG SECONDS: wait until masqd (PID, writing LOG) prints its ready
# line; if it exits or the time is up, show its log and die.
masq_wait_ready() {
    local pid="$1" log="$2" deadline=$((SECONDS + $3))
    while ! grep -qw ready "$log"; do
        if ! kill -0 "$pid" 2>/dev/null || [ $SECONDS -ge $deadline ]; then
            sed 's/^/  | /' "$log" >&2
            masq_die "masqd did not become ready"
        fi
        sleep 0.2
    done
}
