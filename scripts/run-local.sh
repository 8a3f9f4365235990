#!/usr/bin/env bash
# The operator's main job, locally: starts the local control plane (or uses the cluster of
# --kubeconfig), installs the HealthSystem CRD, runs the operator, applies examples/, waits
# until every HealthSystem is Ready and shows their status. Ctrl-C stops everything it
# started.
#
# By default (as root) the local cluster has one real node (testenv/node.sh): the examples'
# databases really run there, from images built from Debian packages. That node has
# PostgreSQL 15, a stand-in application and two cores only, so the examples are applied with
# version 15, that application image and small requests (the copies are in
# target/local-cluster/examples/). Backups go to a real S3-compatible store on the node's
# bridge address (versitygw), encrypted to a key pair made for the run
# (target/local-cluster/restore.key); each system gets store credentials of its own, the
# restore namespace the private key; a first backup of every system is taken once they are
# Ready, and the restore drills follow by themselves. The databases run on CloudNativePG
# (installed from its pinned release manifest with an image built here), with the tier's
# instances: a primary and its replicas, TLS-only logins.
#
# Usage: scripts/run-local.sh [--kubeconfig PATH] [--simulated] [--exit]
#   --kubeconfig PATH  use an existing cluster instead of starting the local one
#   --simulated        simulated nodes only (kwok): nothing really runs, everything is faster
#   --exit             stop after showing the status instead of waiting for Ctrl-C (exits
#                      non-zero when an example did not become Ready)
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
kubeconfig="" stay=1 real_node=1
while [ $# -gt 0 ]; do
  case "$1" in
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --exit) stay=0; shift ;;
    --simulated) real_node=0; shift ;;
    *) echo "run-local: unknown argument $1" >&2; exit 2 ;;
  esac
done

if [ "$real_node" -eq 1 ] && [ "$(id -u)" -ne 0 ]; then
  echo "run-local: the real node needs root; using simulated nodes" >&2
  real_node=0
fi
[ -z "$kubeconfig" ] || real_node=0
bin=$(bash testenv/build.sh)
# The release binary: the one the operator's image holds (and .ci/run has built it already).
echo "run-local: building the operator (release)"
cargo build --release --quiet --locked --bin healthsystem-operator
operator="$root/target/release/healthsystem-operator"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }

children=()
cleanup() {
  trap - EXIT INT TERM
  for p in "${children[@]}"; do kill -TERM "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "run-local: stopped" >&2
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -z "$kubeconfig" ]; then
  dir="$root/target/local-cluster"
  rm -rf "$dir"
  mkdir -p "$dir"
  node_args=()
  [ "$real_node" -eq 1 ] && node_args=(--real-node)
  bash testenv/cluster.sh --dir "$dir" --owner $$ "${node_args[@]}" &
  children+=($!)
  until [ -f "$dir/ready" ]; do
    if ! kill -0 "${children[0]}" 2>/dev/null; then
      echo "run-local: the local control plane did not start (logs in $dir/logs)" >&2
      exit 1
    fi
    sleep 0.5
  done
  kubeconfig="$dir/kubeconfig"
fi

# On the real node: the operator's images are the node's (PostgreSQL 15 and 17: no 16, so an
# example asking for 16 moves to 17), the databases' requests small enough for one machine,
# and the examples use what the node has.
config=config/operator.yaml examples=examples/
if [ "$real_node" -eq 1 ]; then
  # shellcheck disable=SC1091
  . "$(bash testenv/images.sh)/images.env"
  config="$dir/operator.yaml" examples="$dir/examples"
  sed -e "s|^\(    databaseCpu:\).*|\1 50m|" -e "s|^\(    databaseMemory:\).*|\1 512Mi|" \
    -e "s|^\(    defaultCpuRequest:\).*|\1 25m|" \
    -e "s|^\(    \"15\":\).*|\1 $HS_IMAGE_POSTGRES15|" \
    -e "s|^\(    \"17\":\).*|\1 $HS_IMAGE_POSTGRES17|" -e '/^    "16":/d' \
    -e "s|^\(  exporter:\).*|\1 $HS_IMAGE_EXPORTER|" \
    -e "s|^\(  addresses:\).*|\1 [10.244.0.1/32]|" config/operator.yaml >"$config"
  # Backups to a real S3-compatible store (versitygw, pinned in testenv) on the node's bridge
  # address, encrypted to a key pair made here; drills run in the restore namespace.
  store_port=7480 store_root=platform-root store_secret=$(openssl rand -hex 16)
  mkdir -p "$dir/objectstore/data" "$dir/objectstore/iam"
  bash testenv/owned.sh $$ "$bin/versitygw" --port "10.244.0.1:$store_port" --access "$store_root" \
    --secret "$store_secret" --quiet --iam-dir "$dir/objectstore/iam" posix "$dir/objectstore/data" \
    >"$dir/objectstore/versitygw.log" 2>&1 &
  children+=($!)
  store="http://10.244.0.1:$store_port"
  for _ in $(seq 1 100); do (echo >"/dev/tcp/10.244.0.1/$store_port") 2>/dev/null && break; sleep 0.2; done
  "$bin/s3setup" -endpoint "$store" -access "$store_root" -secret "$store_secret" -bucket healthsystem-backups
  "$operator" backup keygen >"$dir/restore.key"
  # The backup Jobs take the agent from the operator's image: built from this binary and
  # imported into the node.
  operator_image=$(bash testenv/operator-image.sh "$operator")
  ctr --address "$dir/node/containerd/containerd.sock" -n k8s.io images import --all-platforms \
    "$operator_image/operator.tar" >/dev/null
  . "$operator_image/operator.env"
  sed -i "s|^  # operator: .*|  operator: $HS_IMAGE_OPERATOR|" "$config"
  # The databases run on CloudNativePG (built at its pinned version, imported into the node):
  # its release manifest with that image, never pulled; its instances reach the API server
  # at the bridge address the local cluster advertises.
  cnpg_image=$(bash testenv/cnpg-image.sh "$bin")
  ctr --address "$dir/node/containerd/containerd.sock" -n k8s.io images import --all-platforms \
    "$cnpg_image/cnpg.tar" >/dev/null
  . "$cnpg_image/cnpg.env"
  sed -e "s|ghcr.io/cloudnative-pg/cloudnative-pg:$HS_CNPG_VERSION|$HS_IMAGE_CNPG|" \
    -e 's|imagePullPolicy: Always|imagePullPolicy: IfNotPresent|' "$bin/../cnpg/release.yaml" >"$dir/cnpg.yaml"
  sed -i -e 's|^  engine: StatefulSet|  engine: CloudNativePG|' \
    -e 's|^      cidrs: \[\]$|      cidrs: [10.244.0.1/32]|' "$config"
  recipient=$(sed -n 's/^# public key: //p' "$dir/restore.key")
  sed -i "s|^  recipients: \[\]|  recipients: [$recipient]\n  objectStore: { endpoint: \"$store\", bucket: healthsystem-backups, network: { cidrs: [10.244.0.1/32], ports: [{ port: $store_port }] } }|" "$config"
  mkdir -p "$examples"
  for f in examples/*.yaml; do
    sed -e 's|^\(    version:\) "16"|\1 "17"|' -e "s|^\(    image:\).*|\1 $HS_IMAGE_APP|" \
      -e 's|^\(    port:\).*|\1 8080|' \
      -e 's|^\(      requests:\).*|\1 { cpu: 50m, memory: 64Mi }|' "$f" >"$examples/$(basename "$f")"
  done
fi

# A store user that reaches only `prefix` (or reads everything), put in the bucket policy.
store_users=()
store_user() { # NAME PREFIX|*
  local secret
  secret=$(openssl rand -hex 16)
  "$bin/versitygw" admin --access "$store_root" --secret "$store_secret" --endpoint-url "$store" \
    create-user --access "$1" --secret "$secret" --role user >/dev/null
  store_users+=("$1=$2")
  local statements="" user prefix
  for entry in "${store_users[@]}"; do
    user=${entry%%=*} prefix=${entry#*=}
    if [ "$prefix" = "*" ]; then
      statements+="{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"$user\"]},\"Action\":[\"s3:GetObject\"],\"Resource\":\"arn:aws:s3:::healthsystem-backups/*\"},"
      statements+="{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"$user\"]},\"Action\":[\"s3:ListBucket\"],\"Resource\":\"arn:aws:s3:::healthsystem-backups\"},"
    else
      statements+="{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"$user\"]},\"Action\":[\"s3:GetObject\",\"s3:PutObject\",\"s3:DeleteObject\",\"s3:AbortMultipartUpload\",\"s3:ListMultipartUploadParts\"],\"Resource\":\"arn:aws:s3:::healthsystem-backups/$prefix/*\"},"
      statements+="{\"Effect\":\"Allow\",\"Principal\":{\"AWS\":[\"$user\"]},\"Action\":[\"s3:ListBucket\"],\"Resource\":\"arn:aws:s3:::healthsystem-backups\",\"Condition\":{\"StringLike\":{\"s3:prefix\":[\"$prefix/*\"]}}},"
    fi
  done
  echo "{\"Version\":\"2012-10-17\",\"Statement\":[${statements%,}]}" >"$dir/objectstore/policy.json"
  "$bin/s3setup" -endpoint "$store" -access "$store_root" -secret "$store_secret" \
    -bucket healthsystem-backups -policy "$dir/objectstore/policy.json"
  store_key=$secret
}

if [ "$real_node" -eq 1 ]; then
  # Before the operator starts: it looks for CloudNativePG's API once, at start.
  echo "run-local: installing CloudNativePG $HS_CNPG_VERSION"
  # Its fleet settings first: its operator reads them once, at start.
  kubectl create namespace cnpg-system --dry-run=client -o yaml | kubectl apply --server-side -f - >/dev/null
  kubectl apply --server-side -f <(sed '/^---$/q' config/cloudnativepg.yaml) >/dev/null
  kubectl apply --server-side -f "$dir/cnpg.yaml" >/dev/null
  # Its operator's resources for a fleet, onto the release's Deployment.
  sed '1,/^---$/d' config/cloudnativepg.yaml |
    kubectl apply --server-side --field-manager=healthsystem-fleet --force-conflicts -f - >/dev/null
  kubectl -n cnpg-system rollout status deployment/cnpg-controller-manager --timeout=240s
fi
echo "run-local: installing the HealthSystem CRD"
kubectl apply --server-side -f crds/healthsystem.yaml
kubectl wait --for=condition=Established --timeout=60s crd/healthsystems.sdc.gov.rs
# The roles the systems' teams are bound to in their namespaces (the chart ships the same file).
kubectl apply --server-side -f charts/healthsystem-operator/files/tenant-roles.yaml
echo "run-local: starting the operator (log: target/operator.log, metrics: http://127.0.0.1:8080/metrics)"
KUBECONFIG="$kubeconfig" bash testenv/owned.sh $$ "$operator" run --config "$config" --http-addr 127.0.0.1:8080 \
  >"$root/target/operator.log" 2>&1 &
children+=($!)
if [ "$real_node" -eq 1 ]; then
  echo "run-local: restore namespace (private key, read access to the bucket) and the store's users"
  kubectl create namespace healthsystem-restore
  store_user platform-restore '*'
  kubectl -n healthsystem-restore create secret generic backup-restore-credentials \
    --from-literal=accessKeyId=platform-restore --from-literal=secretAccessKey="$store_key"
  kubectl -n healthsystem-restore create secret generic backup-restore-identity \
    --from-literal=identity="$(sed -n '/^AGE-SECRET-KEY-/p' "$dir/restore.key")"
fi
echo "run-local: applying $examples"
kubectl apply --server-side -f "$examples"
if [ "$real_node" -eq 1 ]; then
  # Each system's own store credentials, as the platform's provisioning would put them.
  for name in $(kubectl get healthsystems -o jsonpath='{.items[*].metadata.name}'); do
    until kubectl get namespace "hs-$name" >/dev/null 2>&1; do sleep 0.5; done
    store_user "backup-hs-$name" "hs-$name"
    kubectl -n "hs-$name" create secret generic backup-store-credentials \
      --from-literal=accessKeyId="backup-hs-$name" --from-literal=secretAccessKey="$store_key"
  done
fi
echo "run-local: waiting until every HealthSystem is Ready"
ready=0
if kubectl wait --for=condition=Ready --timeout=300s healthsystems --all; then ready=1; fi
if [ "$real_node" -eq 1 ] && [ $ready -eq 1 ]; then
  echo "run-local: a first backup of every system, now (then a restore drill of each runs by itself)"
  for name in $(kubectl get healthsystems -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n "hs-$name" create job backup-now --from=cronjob/backup
  done
  for name in $(kubectl get healthsystems -o jsonpath='{.items[*].metadata.name}'); do
    kubectl -n "hs-$name" wait --for=condition=Complete --timeout=300s job/backup-now || ready=0
  done
  # A backup counts once a restore drill has proven it (BackupReady is False, BackupUnverified,
  # until then); the drills start by themselves after the first backup, two at a time.
  echo "run-local: waiting until a restore drill has proven each backup (PROVEN below)"
  unproven=1
  for _ in $(seq 1 120); do
    unproven=$(kubectl get healthsystems -o jsonpath='{range .items[*]}{.metadata.name}={.status.backup.lastProvenTime}{"\n"}{end}' | grep -c '=$' || true)
    [ "$unproven" -eq 0 ] && break
    sleep 5
  done
  [ "$unproven" -eq 0 ] || ready=0
  echo "run-local: backups in $store (bucket healthsystem-backups), private key $dir/restore.key"
fi
echo
kubectl get healthsystems -o wide
echo
if [ $stay -eq 1 ]; then
  echo "run-local: running. In another shell: export KUBECONFIG=$kubeconfig"
  echo "run-local: Ctrl-C stops everything."
  sleep infinity &
  children+=($!)
  wait "${children[-1]}"
fi
[ $ready -eq 1 ]
