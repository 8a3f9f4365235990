#!/usr/bin/env bash
# Builds the images of CloudNativePG's Barman Cloud plugin for the real node from the binary
# testenv/build.sh built (barman-cloud, pinned in barman-cloud/go.mod) over a Debian trixie
# root filesystem with Debian's barman-cli-cloud (the barman-cloud-* tools the sidecar runs to
# archive WAL, take base backups and restore them; bookworm's 3.4 is older than the plugin
# needs) and boto3 for S3. One archive, two images sharing that layer:
#   plugin   the plugin's operator side (/manager operator ..., called by CloudNativePG)
#   sidecar  the container the plugin injects into every database pod (/manager instance)
# Cached under a key of the binary and this script. Prints the cache directory:
# barman-cloud.tar (for `ctr images import`) and barman-cloud.env (HS_IMAGE_BARMAN_PLUGIN,
# HS_IMAGE_BARMAN_SIDECAR). Progress goes to stderr. Needs root (mmdebstrap in root mode).
#
# Usage: testenv/barman-cloud-image.sh BIN_DIR   (the directory testenv/build.sh prints)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:?usage: barman-cloud-image.sh BIN_DIR}
binary="$bin/barman-cloud"
[ -x "$binary" ] || { echo "testenv: $binary is missing (testenv/build.sh builds it)" >&2; exit 1; }
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
# Tests start in parallel: one build at a time, the others wait and find it cached.
mkdir -p "$cache_root/images"
exec 9>"$cache_root/images/.barman-cloud-image.lock"
flock 9
key=$( (cat "$binary" "$here/barman-cloud-image.sh" "$here/cmd/ociarchive/"*.go) | sha256sum | cut -c1-12)
out="$cache_root/images/barman-cloud-$key"
if [ -f "$out/barman-cloud.tar" ] && [ -f "$out/barman-cloud.env" ]; then
  echo "testenv: cached Barman Cloud plugin images in $out" >&2
  echo "$out"
  exit 0
fi
command -v mmdebstrap >/dev/null || { echo "testenv: mmdebstrap is required (Debian package mmdebstrap)" >&2; exit 1; }
find "$cache_root/images" -maxdepth 1 -name 'barman-cloud-*' -exec rm -rf {} +
mkdir -p "$out"
work=$(mktemp -d -t hs-barman-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
start=$SECONDS

echo "testenv: building the Barman Cloud plugin images (Debian trixie, about 2 minutes)" >&2
mmdebstrap --mode=root --variant=minbase --quiet \
  --include=barman-cli-cloud,python3-boto3,ca-certificates \
  --customize-hook='rm -rf "$1"/var/cache/apt/* "$1"/var/lib/apt/lists/* "$1"/usr/share/doc "$1"/usr/share/man' \
  trixie "$work/rootfs.tar" \
  "deb http://deb.debian.org/debian trixie main" \
  "deb http://deb.debian.org/debian trixie-updates main" \
  "deb http://deb.debian.org/debian-security trixie-security main" >&2
mkdir -p "$work/layer"
install -m 0755 "$binary" "$work/layer/manager"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/layer" -cf "$work/manager.tar" manager

prefix=localhost/hs-testenv
version=$(cat "$bin/../barman-cloud/version")
path=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
cat >"$work/images.json" <<JSON
[
  {"name": "$prefix/plugin-barman-cloud:$version-$key", "entrypoint": ["/manager"], "workingDir": "/",
   "env": ["PATH=$path"], "user": "10001:10001", "layers": ["$work/manager.tar"]},
  {"name": "$prefix/plugin-barman-cloud-sidecar:$version-$key", "entrypoint": ["/manager"], "workingDir": "/",
   "env": ["PATH=$path", "LANG=C.UTF-8"], "user": "26:26", "layers": ["$work/manager.tar"]}
]
JSON
(cd "$here" && go run ./cmd/ociarchive -layer "$work/rootfs.tar" -spec "$work/images.json" -out "$out/barman-cloud.tar.tmp")
cat >"$out/barman-cloud.env.tmp" <<ENV
HS_IMAGE_BARMAN_PLUGIN=$prefix/plugin-barman-cloud:$version-$key
HS_IMAGE_BARMAN_SIDECAR=$prefix/plugin-barman-cloud-sidecar:$version-$key
HS_BARMAN_CLOUD_VERSION=$version
ENV
mv "$out/barman-cloud.tar.tmp" "$out/barman-cloud.tar"
mv "$out/barman-cloud.env.tmp" "$out/barman-cloud.env"
echo "testenv: Barman Cloud plugin images built in $((SECONDS - start))s ($(du -h "$out/barman-cloud.tar" | cut -f1))" >&2
echo "$out"
