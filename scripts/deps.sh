#!/usr/bin/env bash
# Installs what the project needs from Debian's packages and PyPI, and nothing when all is present.
set -euo pipefail

APT_PACKAGES=(pkg-config librdkafka-dev libhiredis-dev redis-server redis-tools postgresql postgresql-client kcat wrk)
PY_MODULES=(jsonschema:jsonschema yaml:PyYAML rfc3339_validator:rfc3339-validator schemathesis:schemathesis==4.32.5)

# Installs the given apt packages that are not installed yet (nothing when all are).
apt_install_missing() {
    local missing=() package
    for package in "$@"; do
        if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
            missing+=("$package")
        fi
    done
    ((${#missing[@]})) || return 0
    echo "deps: installing ${missing[*]}"
    SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
        if command -v sudo >/dev/null; then SUDO="sudo"; else
            echo "deps: missing ${missing[*]}; run as root: apt-get install -y ${missing[*]}" >&2; exit 1
        fi
    fi
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update -qq
    # policy-rc.d 101 keeps the packages' own services from starting: the project runs its own.
    if [[ -z "$SUDO" && ! -e /usr/sbin/policy-rc.d ]]; then
        printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod +x /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Optional, not part of `make deps`/`make test`: the servers `make bench-odds-service` compares
# odds-service with (Nchan = nginx + its module, webdis) and wrk. `scripts/deps.sh bench-peers`.
install_bench_peers() {
    apt_install_missing nginx libnginx-mod-nchan webdis wrk
}

if [[ "${1:-}" == "bench-peers" ]]; then
    install_bench_peers
    exit 0
fi

apt_install_missing "${APT_PACKAGES[@]}"

py_missing=()
for entry in "${PY_MODULES[@]}"; do
    python3 -c "import ${entry%%:*}" 2>/dev/null || py_missing+=("${entry##*:}")
done
if ((${#py_missing[@]})); then
    echo "deps: pip installing ${py_missing[*]}"
    python3 -m pip install --quiet "${py_missing[@]}" || python3 -m pip install --quiet --break-system-packages "${py_missing[@]}"
fi

echo "deps: all present"
