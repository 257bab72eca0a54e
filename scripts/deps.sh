#!/usr/bin/env bash
# Installs what the project needs from Debian's packages and PyPI, and nothing when all is present.
set -euo pipefail

APT_PACKAGES=(pkg-config librdkafka-dev libhiredis-dev redis-server redis-tools postgresql postgresql-client kcat wrk)
PY_MODULES=(jsonschema:jsonschema yaml:PyYAML rfc3339_validator:rfc3339-validator schemathesis:schemathesis==4.32.5)

missing=()
for package in "${APT_PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$package")
    fi
done

if ((${#missing[@]})); then
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
fi

py_missing=()
for entry in "${PY_MODULES[@]}"; do
    python3 -c "import ${entry%%:*}" 2>/dev/null || py_missing+=("${entry##*:}")
done
if ((${#py_missing[@]})); then
    echo "deps: pip installing ${py_missing[*]}"
    python3 -m pip install --quiet "${py_missing[@]}" || python3 -m pip install --quiet --break-system-packages "${py_missing[@]}"
fi

echo "deps: all present"
