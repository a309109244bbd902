#!/bin/sh
# Installs the Debian packages named on the command line that are missing.
# Runs apt-get only when something is missing, so a ready machine pays
# nothing; as non-root it only tells what to install.

missing=""
for p in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null \
         | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done

[ -z "$missing" ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages:$missing" >&2
    echo "run: sudo apt-get install$missing" >&2
    exit 1
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq || exit 1
apt-get install -y -qq --no-install-recommends $missing >/dev/null || exit 1

# Debian's packages start their services where an init system runs them;
# the tests and the demo start their own servers on free ports.
for s in nginx redis-server; do
    if command -v service >/dev/null 2>&1; then
        service "$s" stop >/dev/null 2>&1 || true
    fi
done
exit 0
