#!/usr/bin/env bash
# Builds the pinned local control plane (kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, etcd, kwok, the small helpers under cmd/), the real node's
# components (kubelet and kube-proxy from the same module; kube-router and CoreDNS from
# modules of their own), helm (for the chart tests) and versitygw (the S3-compatible object
# store of the backup tests, with s3setup, which makes its bucket and policy) and CloudNativePG's
# manager (cnpg-manager, the database engine's operator and instance manager) and its Barman
# Cloud plugin (barman-cloud: WAL archiving, base backups and recovery) from the Go module
# proxy, once, and fetches the Prometheus Operator's CRDs pinned in crds/go.mod and the
# release manifests of CloudNativePG (cnpg/go.mod) and of the plugin (barman-cloud/go.mod). Each tool is cached under a key of its own inputs and linked into a bin
# directory keyed by all of them, so a second run is instant and a changed helper rebuilds
# only itself. Prints the bin directory on stdout (the CRDs are in ../crds beside it);
# progress goes to stderr.
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache_root=${HS_TESTENV_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/healthsystem-testenv}
key=$(cd "$here" && cat build.sh go.mod go.sum helm/go.mod helm/go.sum crds/go.mod crds/go.sum \
  kube-router/go.mod kube-router/go.sum coredns/go.mod coredns/go.sum coredns/main.go \
  versitygw/go.mod versitygw/go.sum versitygw/s3setup/main.go cnpg/go.mod cnpg/go.sum \
  barman-cloud/go.mod barman-cloud/go.sum \
  $(find cmd -name "*.go" | sort) | sha256sum | cut -c1-16)
bin="$cache_root/$key/bin"
tools=(kube-apiserver kube-controller-manager kube-scheduler kubectl kwok etcd kwok-stages provisioner
  tcpforward kubelet kube-proxy kube-router coredns helm versitygw s3setup cnpg-manager barman-cloud)

# The Prometheus Operator's CRDs (PodMonitor, PrometheusRule, ServiceMonitor), from the
# module pinned in crds/go.mod, for the tests that need the monitoring API served.
crds="$cache_root/$key/crds"
if [ ! -f "$crds/monitoring.coreos.com_prometheusrules.yaml" ]; then
  mkdir -p "$crds"
  module_dir=$(cd "$here/crds" && go mod download -json github.com/prometheus-operator/prometheus-operator | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  for kind in podmonitors prometheusrules servicemonitors; do
    cp "$module_dir/example/prometheus-operator-crd/monitoring.coreos.com_$kind.yaml" "$crds/"
  done
fi

# CloudNativePG's release manifest (CRDs, RBAC, the operator's Deployment and webhooks) of
# the version pinned in cnpg/go.mod, from the same module as its manager.
cnpg="$cache_root/$key/cnpg"
if [ ! -f "$cnpg/release.yaml" ]; then
  mkdir -p "$cnpg"
  module_dir=$(cd "$here/cnpg" && go mod download -json github.com/cloudnative-pg/cloudnative-pg | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  version=$(cd "$here/cnpg" && go list -m -f '{{.Version}}' github.com/cloudnative-pg/cloudnative-pg)
  cp "$module_dir/releases/cnpg-${version#v}.yaml" "$cnpg/release.yaml.tmp"
  echo "${version#v}" >"$cnpg/version"
  mv "$cnpg/release.yaml.tmp" "$cnpg/release.yaml"
fi

# The Barman Cloud plugin's release manifest (its ObjectStore CRD, RBAC, Service and
# Deployment) of the version pinned in barman-cloud/go.mod, from the same module as its binary.
barman="$cache_root/$key/barman-cloud"
if [ ! -f "$barman/manifest.yaml" ]; then
  mkdir -p "$barman"
  module_dir=$(cd "$here/barman-cloud" && go mod download -json github.com/cloudnative-pg/plugin-barman-cloud | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')
  version=$(cd "$here/barman-cloud" && go list -m -f '{{.Version}}' github.com/cloudnative-pg/plugin-barman-cloud)
  cp "$module_dir/manifest.yaml" "$barman/manifest.yaml.tmp"
  echo "${version#v}" >"$barman/version"
  mv "$barman/manifest.yaml.tmp" "$barman/manifest.yaml"
fi

missing=()
for t in "${tools[@]}"; do [ -x "$bin/$t" ] || missing+=("$t"); done
if [ ${#missing[@]} -eq 0 ]; then
  echo "testenv: cached control plane in $bin" >&2
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
cd "$here"
# Each tool is built once per key of its own inputs (its module's go.mod and go.sum, a local
# command's sources, this script's recipe) into $cache_root/tools, and linked into $bin: a
# change to one helper rebuilds that helper, not the whole control plane.
recipe=2
tool_key() {
  local t=$1 module=. sources=()
  case "$t" in
    helm | kube-router | coredns | versitygw) module=$t ;;
    s3setup) module=versitygw ;;
    cnpg-manager) module=cnpg ;;
    barman-cloud) module=barman-cloud ;;
  esac
  [ "$t" = coredns ] && sources=(coredns/main.go)
  [ "$t" = s3setup ] && sources=(versitygw/s3setup/main.go)
  [ -d "cmd/$t" ] && mapfile -t sources < <(find "cmd/$t" -name "*.go" | sort)
  { echo "recipe $recipe $t"; cat "$module/go.mod" "$module/go.sum" "${sources[@]}"; } | sha256sum | cut -c1-16
}
declare -A pkg=(
  [kube-apiserver]=k8s.io/kubernetes/cmd/kube-apiserver
  [kube-controller-manager]=k8s.io/kubernetes/cmd/kube-controller-manager
  [kube-scheduler]=k8s.io/kubernetes/cmd/kube-scheduler
  [kubectl]=k8s.io/kubernetes/cmd/kubectl
  [kwok]=sigs.k8s.io/kwok/cmd/kwok
  [etcd]=./cmd/etcd
  [kwok-stages]=./cmd/kwok-stages
  [provisioner]=./cmd/provisioner
  [tcpforward]=./cmd/tcpforward
  [kubelet]=k8s.io/kubernetes/cmd/kubelet
  [kube-proxy]=k8s.io/kubernetes/cmd/kube-proxy
  [kube-router]=github.com/cloudnativelabs/kube-router/v2/cmd/kube-router
  [coredns]=.
  [helm]=helm.sh/helm/v3/cmd/helm
  [versitygw]=github.com/versity/versitygw/cmd/versitygw
  [s3setup]=./s3setup
  [cnpg-manager]=github.com/cloudnative-pg/cloudnative-pg/cmd/manager
  [barman-cloud]=github.com/cloudnative-pg/plugin-barman-cloud/cmd/manager
)
to_build=()
for t in "${missing[@]}"; do
  built="$cache_root/tools/$t-$(tool_key "$t")/$t"
  if [ -x "$built" ]; then ln -sfn "$built" "$bin/$t"; else to_build+=("$t"); fi
done
if [ ${#to_build[@]} -eq 0 ]; then
  echo "testenv: linked cached tools into $bin" >&2
  echo "$bin"
  exit 0
fi
echo "testenv: building ${to_build[*]} (the first build of everything takes about 25 minutes)" >&2
echo "testenv: downloading modules" >&2
go mod download >&2
for m in helm kube-router coredns versitygw cnpg barman-cloud; do (cd "$m" && go mod download) >&2; done
# Stamp the Kubernetes binaries with their real version (they report v0.0.0 otherwise).
k8s_version=$(go list -m -f '{{.Version}}' k8s.io/kubernetes)
minor=$(echo "$k8s_version" | cut -d. -f2)
vpkg=k8s.io/component-base/version
k8s_ldflags="-X $vpkg.gitVersion=$k8s_version -X $vpkg.gitMajor=1 -X $vpkg.gitMinor=$minor -X $vpkg.gitTreeState=clean"
for t in "${to_build[@]}"; do
  start=$SECONDS
  out="$cache_root/tools/$t-$(tool_key "$t")"
  mkdir -p "$out"
  echo "testenv: building $t" >&2
  # Build to a temporary name so an interrupted build never leaves a broken binary cached.
  if [ "$t" = s3setup ]; then
    # The object store's provisioning helper, in versitygw's module (its AWS SDK).
    (cd versitygw && go build -trimpath -ldflags="-s -w" -o "$out/.$t.tmp" "${pkg[$t]}") >&2
  elif [ "$t" = cnpg-manager ]; then
    # Static (the instance manager is copied into every database pod, whatever its image).
    (cd cnpg && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/.$t.tmp" "${pkg[$t]}") >&2
  elif [ "$t" = barman-cloud ]; then
    # Static, as its own images build it (it runs over a Debian root of another release).
    (cd barman-cloud && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w" -o "$out/.$t.tmp" "${pkg[$t]}") >&2
  elif [ "$t" = helm ] || [ "$t" = kube-router ] || [ "$t" = coredns ] || [ "$t" = versitygw ]; then
    # These live in modules of their own (testenv/NAME), with their own Kubernetes libraries.
    (cd "$t" && go build -trimpath -ldflags="-s -w" -o "$out/.$t.tmp" "${pkg[$t]}") >&2
  else
    go build -trimpath -ldflags="-s -w $k8s_ldflags" -o "$out/.$t.tmp" "${pkg[$t]}" >&2
  fi
  mv "$out/.$t.tmp" "$out/$t"
  ln -sfn "$out/$t" "$bin/$t"
  echo "testenv: built $t in $((SECONDS - start))s" >&2
done
echo "$bin"
