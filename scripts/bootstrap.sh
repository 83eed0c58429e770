#!/bin/sh
# bootstrap.sh — installs what castgate needs on Debian 12 when it is missing:
# build libraries, PostgreSQL, the real RTMP clients and players used by the
# tests (FFmpeg, GStreamer, Chromium), the fuzzing toolchain, the benchmark
# peers (wrk, nginx-rtmp) and the npm packages (hls.js, playwright-core).
# Idempotent and quiet when everything is present.
set -eu
cd "$(dirname "$0")/.."

APT_PKGS="gcc make pkg-config
 libavformat-dev libavcodec-dev libavutil-dev libevent-dev libpq-dev librtmp-dev
 libjansson-dev libssl-dev libinih-dev libcmocka-dev
 postgresql postgresql-client ffmpeg
 gstreamer1.0-tools gstreamer1.0-plugins-base gstreamer1.0-plugins-good
 gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly gstreamer1.0-libav
 python3 python3-pytest clang libclang-rt-14-dev curl procps ca-certificates
 chromium wrk nginx libnginx-mod-rtmp"

missing=""
for p in $APT_PKGS; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"

if [ -n "$missing" ]; then
    echo "bootstrap: installing:$missing"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    # Keep package installs from starting system services (nginx on :80,
    # the distribution's PostgreSQL cluster): castgate runs its own.
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
        $SUDO chmod +x /usr/sbin/policy-rc.d
        created_policy=1
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    # shellcheck disable=SC2086
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/tmp/castgate-apt.log 2>&1 || {
        echo "bootstrap: apt-get install failed; last lines of /tmp/castgate-apt.log:" >&2
        tail -20 /tmp/castgate-apt.log >&2
        [ $created_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
        exit 1
    }
    [ $created_policy -eq 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
fi

# npm packages (player page: hls.js; browser tests: playwright-core).
if [ -f package.json ]; then
    if [ ! -d node_modules ] || [ package.json -nt node_modules ] || [ package-lock.json -nt node_modules ]; then
        echo "bootstrap: npm install"
        if [ -f package-lock.json ]; then
            npm ci --no-audit --no-fund --loglevel=error
        else
            npm install --no-audit --no-fund --loglevel=error
        fi
        touch node_modules
    fi
fi
