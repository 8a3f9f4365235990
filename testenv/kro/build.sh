#!/usr/bin/env bash
# Builds kro's controller (the version pinned in go.mod, from the Go module proxy) once and
# copies its CRDs beside it, for the fleet benchmark's kro peer. Cached under a key of
# go.mod, go.sum and this script. Prints the directory holding `kro` and `crds/`; progress
# goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
key=$(cd "$here" && cat build.sh go.mod go.sum | sha256sum | cut -c1-16)
out="$cache_root/tools/kro-$key"
if [ -x "$out/kro" ] && [ -f "$out/crds/kro.run_resourcegraphdefinitions.yaml" ]; then
  echo "$out"
  exit 0
fi
mkdir -p "$out/crds"
cd "$here"
start=$SECONDS
echo "testenv: building kro (a few minutes, once)" >&2
go build -trimpath -ldflags="-s -w" -o "$out/.kro.tmp" github.com/kubernetes-sigs/kro/cmd/controller >&2
module_dir=$(go list -m -f '{{.Dir}}' github.com/kubernetes-sigs/kro)
cp "$module_dir"/helm/crds/*.yaml "$out/crds/"
mv "$out/.kro.tmp" "$out/kro"
echo "testenv: built kro in $((SECONDS - start))s" >&2
echo "$out"
