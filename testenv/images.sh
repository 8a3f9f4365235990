#!/usr/bin/env bash
# Builds the container images of the local cluster's real node from Debian packages (no
# registry is reachable here): one root filesystem made by mmdebstrap (PostgreSQL 15 server
# and client tools, the Prometheus PostgreSQL exporter, busybox for a stand-in application
# and netcat for connection tests), turned by cmd/ociarchive into one OCI archive holding
# several images that share that layer and differ by configuration, and PostgreSQL 17 from
# Debian trixie (the same mirror) as an archive of its own:
#   postgres   PostgreSQL 15 with its binaries on PATH, no entrypoint (the pod's command
#              bootstraps the database), uid/gid 999 named postgres as in the official image
#   exporter   prometheus-postgres-exporter as entrypoint
#   app        busybox httpd serving /srv/www on port 8080 (the application in tests)
#   pause      the pod sandbox
#   postgres17 PostgreSQL 17 (trixie), laid out as postgres (postgres17.tar)
# Cached under a key of this script and ociarchive's source; a second run is instant.
# Prints the cache directory: images.tar and postgres17.tar (for `ctr images import`),
# images.env (the image names, as shell variables HS_IMAGE_POSTGRES15, HS_IMAGE_POSTGRES17,
# HS_IMAGE_EXPORTER, HS_IMAGE_APP, HS_IMAGE_PAUSE) and rootfs.tar (the base layer, for
# operator-image.sh). Progress goes to stderr. Needs root (mmdebstrap in root mode).
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
# Tests start in parallel: one build at a time, the others wait and find it cached.
mkdir -p "$cache_root/images"
exec 9>"$cache_root/images/.images.lock"
flock 9
key=$(cd "$here" && cat images.sh cmd/ociarchive/*.go | sha256sum | cut -c1-12)
out="$cache_root/images/$key"
if [ -f "$out/images.tar" ] && [ -f "$out/postgres17.tar" ] && [ -f "$out/images.env" ] && [ -f "$out/rootfs.tar" ]; then
  echo "testenv: cached images in $out" >&2
  echo "$out"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "testenv: mmdebstrap is required (Debian package mmdebstrap)" >&2; exit 1; }
mkdir -p "$out"
work=$(mktemp -d -t hs-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

# A Debian root filesystem of SUITE with PACKAGES, as OUT. The postgres user gets uid and gid
# 999, as in the official images: initdb refuses to run as a uid without a passwd entry, and
# the pods run as 999. No cluster is created at install.
debian_root() {
  local suite=$1 packages=$2 target=$3
  mmdebstrap --mode=root --variant=minbase --quiet --include="$packages" \
    --essential-hook='mkdir -p "$1/etc/postgresql-common/createcluster.d" && echo "create_main_cluster = false" >"$1/etc/postgresql-common/createcluster.d/no-main-cluster.conf"' \
    --customize-hook='chroot "$1" groupmod -g 999 postgres && chroot "$1" usermod -u 999 -g 999 postgres' \
    --customize-hook='mkdir -p "$1/srv/www" && echo "healthsystem test application" >"$1/srv/www/index.html"' \
    --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man' \
    "$suite" "$target" \
    "deb http://deb.debian.org/debian $suite main" \
    "deb http://deb.debian.org/debian $suite-updates main" \
    "deb http://deb.debian.org/debian-security $suite-security main" >&2
}

echo "testenv: building the node images (Debian bookworm and trixie root filesystems, about 5 minutes)" >&2
debian_root bookworm postgresql-15,postgresql-client-15,prometheus-postgres-exporter,busybox,netcat-openbsd,ca-certificates "$work/rootfs.tar"
debian_root trixie postgresql-17,postgresql-client-17,ca-certificates "$work/rootfs17.tar"

prefix=localhost/hs-testenv
path=/usr/lib/postgresql/15/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cat >"$work/images.json" <<JSON
[
  {"name": "$prefix/postgres:15-$key", "cmd": ["bash"], "env": ["PATH=$path", "LANG=C.UTF-8"], "user": "999"},
  {"name": "$prefix/postgres-exporter:$key", "entrypoint": ["/usr/bin/prometheus-postgres-exporter"], "env": ["PATH=$path"], "user": "999"},
  {"name": "$prefix/app:$key", "entrypoint": ["/bin/busybox", "httpd", "-f", "-p", "8080", "-h", "/srv/www"], "env": ["PATH=$path"], "user": "999"},
  {"name": "$prefix/pause:$key", "entrypoint": ["/bin/sleep", "infinity"], "env": ["PATH=$path"], "user": "65535"}
]
JSON
path17=/usr/lib/postgresql/17/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cat >"$work/postgres17.json" <<JSON
[{"name": "$prefix/postgres:17-$key", "cmd": ["bash"], "env": ["PATH=$path17", "LANG=C.UTF-8"], "user": "999"}]
JSON
(cd "$here" && go run ./cmd/ociarchive -layer "$work/rootfs.tar" -spec "$work/images.json" -out "$out/images.tar.tmp")
(cd "$here" && go run ./cmd/ociarchive -layer "$work/rootfs17.tar" -spec "$work/postgres17.json" -out "$out/postgres17.tar.tmp")
cat >"$out/images.env.tmp" <<ENV
HS_IMAGE_POSTGRES15=$prefix/postgres:15-$key
HS_IMAGE_POSTGRES17=$prefix/postgres:17-$key
HS_IMAGE_EXPORTER=$prefix/postgres-exporter:$key
HS_IMAGE_APP=$prefix/app:$key
HS_IMAGE_PAUSE=$prefix/pause:$key
ENV
mv "$work/rootfs.tar" "$out/rootfs.tar"
mv "$out/images.tar.tmp" "$out/images.tar"
mv "$out/postgres17.tar.tmp" "$out/postgres17.tar"
mv "$out/images.env.tmp" "$out/images.env"
echo "testenv: images built in $((SECONDS - start))s ($(du -h "$out/images.tar" | cut -f1))" >&2
echo "$out"
