#!/usr/bin/env bash
# Builds CloudNativePG's image for the real node from the manager testenv/build.sh built
# (cnpg-manager, pinned in cnpg/go.mod), laid out as CloudNativePG's own image: the binary as
# /operator/manager_ARCH (the operator finds the architectures it can hand to database pods
# by those names, and refuses to work without its own) and /manager linked to it, working
# directory / (the operator runs /manager; the init container of each database pod copies it
# into the pod), over the Debian base of testenv/images.sh.
# Cached under a key of the binary, this script and the base.
# Prints the cache directory: cnpg.tar (for `ctr images import`) and cnpg.env
# (HS_IMAGE_CNPG=name, HS_CNPG_VERSION=version). Progress goes to stderr.
#
# Usage: testenv/cnpg-image.sh BIN_DIR   (the directory testenv/build.sh prints)
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
bin=${1:?usage: cnpg-image.sh BIN_DIR}
binary="$bin/cnpg-manager"
version=$(cat "$bin/../cnpg/version")
[ -x "$binary" ] || { echo "testenv: $binary is missing (testenv/build.sh builds it)" >&2; exit 1; }
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
# Tests start in parallel: one build at a time, the others wait and find it cached.
mkdir -p "$cache_root/images"
exec 9>"$cache_root/images/.cnpg-image.lock"
flock 9
base=$("$here/images.sh")
key=$( (cat "$binary" "$here/cnpg-image.sh"; echo "$base") | sha256sum | cut -c1-12)
out="$cache_root/images/cnpg-$key"
if [ -f "$out/cnpg.tar" ] && [ -f "$out/cnpg.env" ]; then
  echo "testenv: cached CloudNativePG image in $out" >&2
  echo "$out"
  exit 0
fi
find "$cache_root/images" -maxdepth 1 -name 'cnpg-*' -exec rm -rf {} +
mkdir -p "$out"
work=$(mktemp -d -t hs-cnpg-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

arch=$(go env GOARCH)
mkdir -p "$work/layer/operator"
install -m 0755 "$binary" "$work/layer/operator/manager_$arch"
ln -s "operator/manager_$arch" "$work/layer/manager"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/layer" -cf "$work/cnpg-layer.tar" manager operator
name=localhost/hs-testenv/cloudnative-pg:$version-$key
cat >"$work/image.json" <<JSON
[{"name": "$name", "entrypoint": ["/manager"], "workingDir": "/",
  "env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "user": "10001:10001",
  "layers": ["$work/cnpg-layer.tar"]}]
JSON
(cd "$here" && go run ./cmd/ociarchive -layer "$base/rootfs.tar" -spec "$work/image.json" -out "$out/cnpg.tar.tmp")
printf 'HS_IMAGE_CNPG=%s\nHS_CNPG_VERSION=%s\n' "$name" "$version" >"$out/cnpg.env.tmp"
mv "$out/cnpg.tar.tmp" "$out/cnpg.tar"
mv "$out/cnpg.env.tmp" "$out/cnpg.env"
echo "testenv: CloudNativePG image $name in $out" >&2
echo "$out"
