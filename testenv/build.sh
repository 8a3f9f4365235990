#!/usr/bin/env bash
# Builds the pinned local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok and the small helpers under cmd/) from the Go module
# proxy, once. The binaries land in a cache directory keyed by this script, go.mod, go.sum and
# the helpers' sources, so a second run is instant.
# Prints the bin directory on stdout; progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
key=$(cd "$here" && cat build.sh go.mod go.sum $(find cmd -name "*.go" | sort) | sha256sum | cut -c1-16)
bin="$cache_root/$key/bin"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd kwok-stages provisioner)

missing=()
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "testenv: cached control plane in $bin" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
cd "$here"
echo "testenv: building ${missing[*]} into $bin (the first build takes about 10 minutes)" >&2
echo "testenv: downloading modules" >&2
go mod download >&2
declare -A pkg=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [etcd]=./cmd/etcd
  [kwok-stages]=./cmd/kwok-stages
  [provisioner]=./cmd/provisioner
)
# Stamp the Kubernetes binaries with their real version (they report v0.0.0 otherwise).
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
k8s_ldflags="-X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
for t in "${missing[@]}"; do
  start=$SECONDS
  echo "testenv: building $t" >&2
  # Build to a temporary name so an interrupted build never leaves a broken binary cached.
  go build -trimpath -ldflags="-s -w $k8s_ldflags" -o "$bin/.$t.tmp" "${pkg[$t]}" >&2
  mv "$bin/.$t.tmp" "$bin/$t"
  echo "testenv: built $t in $((SECONDS - start))s" >&2
done
echo "$bin"
