#!/usr/bin/env bash
# Builds the operator's image for the real node from a built operator binary: the binary as a
# layer of its own over the Debian base of testenv/images.sh (glibc, CA certificates), run as
# the non-root uid 65532 the chart sets, entrypoint the binary. Cached under a key of the
# binary, this script and the base; only the newest operator image is kept.
# Prints the cache directory: operator.tar (for `ctr images import`) and operator.env
# (HS_IMAGE_OPERATOR=name). Progress goes to stderr.
#
# Usage: testenv/operator-image.sh target/release/healthsystem-operator
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
binary=${1:?usage: operator-image.sh BINARY}
[ -x "$binary" ] || { echo "testenv: $binary is not an executable (cargo build --release builds it)" >&2; exit 1; }
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
# Tests start in parallel: one build at a time, the others wait and find it cached.
mkdir -p "$cache_root/images"
exec 9>"$cache_root/images/.operator-image.lock"
flock 9
base=$("$here/images.sh")
key=$( (cat "$binary" "$here/operator-image.sh"; echo "$base") | sha256sum | cut -c1-12)
out="$cache_root/images/operator-$key"
if [ -f "$out/operator.tar" ] && [ -f "$out/operator.env" ]; then
  echo "testenv: cached operator image in $out" >&2
  echo "$out"
  exit 0
fi
# One operator image at a time: each holds a copy of the base layer.
find "$cache_root/images" -maxdepth 1 -name 'operator-*' -exec rm -rf {} +
mkdir -p "$out"
work=$(mktemp -d -t hs-operator-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

mkdir -p "$work/layer/usr/local/bin"
install -m 0755 "$binary" "$work/layer/usr/local/bin/healthsystem-operator"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime=@0 -C "$work/layer" -cf "$work/operator-layer.tar" usr
name=localhost/hs-testenv/healthsystem-operator:$key
cat >"$work/image.json" <<JSON
[{"name": "$name", "entrypoint": ["/usr/local/bin/healthsystem-operator"],
  "env": ["PATH=/usr/local/bin:/usr/bin:/bin"], "user": "65532:65532",
  "layers": ["$work/operator-layer.tar"]}]
JSON
(cd "$here" && go run ./cmd/ociarchive -layer "$base/rootfs.tar" -spec "$work/image.json" -out "$out/operator.tar.tmp")
echo "HS_IMAGE_OPERATOR=$name" >"$out/operator.env.tmp"
mv "$out/operator.tar.tmp" "$out/operator.tar"
mv "$out/operator.env.tmp" "$out/operator.env"
echo "testenv: operator image $name in $out" >&2
echo "$out"
