# Shell functions shared by the setup scripts: the Debian package lists and installing what is missing.
# Source it:  . scripts/packages.sh
#   package_names FILE [GROUP]   the names in FILE (scripts/debian-packages*.txt), or only those whose
#                                comment starts with "[GROUP]"
#   missing_packages NAME...     the names that dpkg does not list as installed
#   ensure_packages WHO NAME...  install the missing ones (root + apt-get), else print the exact command
#                                and return 2; WHO prefixes every message

package_names() {
    local file="$1" group="${2:-}"
    if [ -n "$group" ]; then
        grep -E "#[[:space:]]*\[$group\]" "$file" | sed 's/#.*//' | tr -s ' \t' '\n' | grep -v '^$' || true
    else
        sed 's/#.*//' "$file" | tr -s ' \t' '\n' | grep -v '^$' || true
    fi
}

missing_packages() {
    local name
    for name in "$@"; do
        dpkg-query -W -f='${Status}' "$name" 2>/dev/null | grep -q "install ok installed" || echo "$name"
    done
}

ensure_packages() {
    local who="$1"
    shift
    local missing
    if ! command -v dpkg-query >/dev/null 2>&1; then
        echo "$who: not a Debian system; install the equivalents of: $*" >&2
        return 2
    fi
    missing="$(missing_packages "$@" | tr '\n' ' ')"
    missing="${missing% }"
    [ -z "$missing" ] && return 0
    if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
        echo "$who: these Debian packages are missing: $missing" >&2
        echo "$who: install them with:  sudo apt-get install -y --no-install-recommends $missing" >&2
        return 2
    fi
    echo "$who: installing Debian packages: $missing" >&2
    local log
    log="$(mktemp)"
    # shellcheck disable=SC2086
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing; } \
        >"$log" 2>&1; then
        echo "$who: apt-get failed:" >&2
        tail -n 20 "$log" >&2
        rm -f "$log"
        return 1
    fi
    rm -f "$log"
}
