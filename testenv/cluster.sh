#!/usr/bin/env bash
# Runs a local Kubernetes control plane on loopback, in the foreground, until it is told to
# stop (SIGINT or SIGTERM) or until the process given with --owner exits:
#   etcd, kube-apiserver (TLS, RBAC, token auth), kube-controller-manager, kube-scheduler,
#   kwok (simulated nodes and pods) and a volume provisioner for claims.
# With --real-node the cluster has one real node instead of the simulated ones (node.sh:
# containerd, kubelet, kube-proxy, kube-router, CoreDNS), so it is the only schedulable node
# and every pod really runs there; volumes are directories on it. Needs root.
# Ports are free ones picked at start. When everything is ready it writes DIR/kubeconfig
# (admin credentials) and then DIR/ready; logs go to DIR/logs/. On exit every process it
# started is stopped and the etcd data is removed.
# Fault tests restart etcd or kube-apiserver by writing DIR/restart/NAME (its content: the
# seconds to stay down): the component is killed (SIGKILL), started again with the same
# command line (etcd keeps its data), and the file is removed once it is healthy again.
#
# With --audit the API server writes an audit log of every write (metadata only, one JSON
# event per request) to DIR/logs/audit.log: the leader tests read who wrote when from it.
#
# Usage: testenv/cluster.sh [--dir DIR] [--owner PID] [--nodes N] [--real-node] [--audit]
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="" owner="" nodes=3 real_node=false audit=false
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --owner) owner=$2; shift 2 ;;
    --nodes) nodes=$2; shift 2 ;;
    --real-node) real_node=true; nodes=0; shift ;;
    --audit) audit=true; shift ;;
    *) echo "cluster.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done

bin=$("$here/build.sh")
images=""
if $real_node; then images=$("$here/images.sh"); fi
[ -n "$dir" ] || dir=$(mktemp -d -t hs-testenv.XXXXXX)
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
rm -rf "$dir/ready" "$dir/kubeconfig" "$dir/restart"
pki="$dir/pki" logs="$dir/logs" data="$dir/etcd"
mkdir -p "$pki" "$logs" "$data" "$dir/restart"

log() { echo "testenv: $*" >&2; }

# shellcheck source=lib.sh
. "$here/lib.sh"
stop_all() {
  trap - EXIT INT TERM
  rm -f "$dir/ready"
  # Newest first, each given 5 s to exit cleanly: clients stop before the API server, and
  # the API server before etcd, so nothing hangs waiting for what is already gone.
  local i
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    local p=${pids[$i]} grace=50
    # The real node removes its pods, mounts and rules before it exits.
    [ "${names[$i]}" = node ] && grace=600
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 "$grace"); do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.1
    done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  rm -rf "$data"
  log "stopped"
}
trap stop_all EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


log "certificates and credentials in $pki"
openssl req -x509 -newkey rsa:2048 -nodes -days 7 -subj "/CN=hs-testenv-ca" \
  -keyout "$pki/ca.key" -out "$pki/ca.crt" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
  -keyout "$pki/apiserver.key" -out "$pki/apiserver.csr" 2>/dev/null
printf '%s\n' "subjectAltName=IP:127.0.0.1,DNS:localhost,IP:10.96.0.1,IP:10.244.0.1,DNS:kubernetes,DNS:kubernetes.default.svc" \
  "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" \
  >"$pki/apiserver.ext"
openssl x509 -req -days 7 -in "$pki/apiserver.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -extfile "$pki/apiserver.ext" -out "$pki/apiserver.crt" 2>/dev/null
openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
token=$(openssl rand -hex 24)
echo "$token,admin,admin,system:masters" >"$pki/tokens.csv"
# The API server's client certificate towards kubelets (logs, exec), in system:masters.
openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" \
  -keyout "$pki/kubelet-client.key" -out "$pki/kubelet-client.csr" 2>/dev/null
printf '%s\n' "extendedKeyUsage=clientAuth" >"$pki/kubelet-client.ext"
openssl x509 -req -days 7 -in "$pki/kubelet-client.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" \
  -CAcreateserial -extfile "$pki/kubelet-client.ext" -out "$pki/kubelet-client.crt" 2>/dev/null
chmod 600 "$pki"/*.key "$pki/tokens.csv"

for v in etcd_port peer_port api_port kcm_port sched_port; do free_port "$v"; done
# With a real node, pods reach the API server through the `kubernetes` Service, whose
# endpoint is the advertised address and port: the node's bridge address (node.sh relays it
# to loopback) and 6443, the port network policies allow towards an API server.
advertise=127.0.0.1
# One real-node cluster at a time: the previous one (another test binary's) may still be
# stopping, so its port is waited for as node.sh waits for the node's lock.
if $real_node; then
  advertise=10.244.0.1 api_port=6443
  for i in $(seq 1 120); do
    (exec 3<>"/dev/tcp/127.0.0.1/$api_port") 2>/dev/null || break
    if [ "$i" -eq 120 ]; then
      log "port $api_port on 127.0.0.1 is still taken after 120s: the real node's API server needs it"
      exit 1
    fi
    sleep 1
  done
fi

kubeconfig="$dir/admin.kubeconfig"
cat >"$kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: hs-testenv
  cluster:
    server: https://127.0.0.1:$api_port
    certificate-authority-data: $(base64 -w0 <"$pki/ca.crt")
users:
- name: admin
  user:
    token: $token
contexts:
- name: hs-testenv
  context:
    cluster: hs-testenv
    user: admin
current-context: hs-testenv
EOF
chmod 600 "$kubeconfig"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
# Every node reports Ready (one read; `kubectl wait --all` with a short timeout failed on more
# than three nodes).
nodes_ready() {
  local states
  states=$(kubectl get nodes -o jsonpath='{range .items[*]}{.status.conditions[?(@.type=="Ready")].status}{"\n"}{end}') || return 1
  [ -n "$states" ] && ! grep -qv '^True$' <<<"$states"
}

# healthy NAME: whether etcd or the API server serves (at start and after a restart).
healthy() {
  case "$1" in
    etcd) curl -sf "http://127.0.0.1:$etcd_port/health" ;;
    kube-apiserver) kubectl get --raw /readyz ;;
    *) true ;;
  esac
}

log "etcd on 127.0.0.1:$etcd_port"
start etcd "$bin/etcd" --name testenv --data-dir "$data" \
  --listen-client-urls "http://127.0.0.1:$etcd_port" --advertise-client-urls "http://127.0.0.1:$etcd_port" \
  --listen-peer-urls "http://127.0.0.1:$peer_port" --initial-advertise-peer-urls "http://127.0.0.1:$peer_port" \
  --initial-cluster "testenv=http://127.0.0.1:$peer_port" --unsafe-no-fsync --log-level warn
wait_for etcd 30 healthy etcd

audit_flags=()
if $audit; then
  cat >"$dir/audit-policy.yaml" <<EOF
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
- level: Metadata
  verbs: [create, update, patch, delete, deletecollection]
- level: None
EOF
  audit_flags=(--audit-policy-file "$dir/audit-policy.yaml" --audit-log-path "$logs/audit.log"
    --audit-log-format json --audit-log-maxsize 0)
fi

log "kube-apiserver on https://127.0.0.1:$api_port"
start kube-apiserver "$bin/kube-apiserver" "${audit_flags[@]}" \
  --etcd-servers "http://127.0.0.1:$etcd_port" \
  --bind-address 127.0.0.1 --advertise-address "$advertise" --secure-port "$api_port" \
  --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
  --client-ca-file "$pki/ca.crt" --cert-dir "$pki" \
  --service-account-issuer https://kubernetes.default.svc \
  --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
  --authorization-mode RBAC --token-auth-file "$pki/tokens.csv" \
  --service-cluster-ip-range 10.96.0.0/16 --allow-privileged=false \
  --kubelet-client-certificate "$pki/kubelet-client.crt" --kubelet-client-key "$pki/kubelet-client.key" \
  --kubelet-preferred-address-types InternalIP
wait_for kube-apiserver 90 healthy kube-apiserver

common=(--kubeconfig "$kubeconfig" --authentication-kubeconfig "$kubeconfig"
  --authorization-kubeconfig "$kubeconfig" --bind-address 127.0.0.1 --leader-elect=false)
log "kube-controller-manager, kube-scheduler, kwok and the volume provisioner"
# kwok's simulated kubelets never mark a pod Ready again once the node lifecycle controller
# marked it NotReady (a real kubelet does): a long grace keeps the fault tests' API server
# restarts, which delay their node leases, from leaving pods NotReady for good.
kcm_node_grace=()
$real_node || kcm_node_grace=(--node-monitor-grace-period 10m)
start kube-controller-manager "$bin/kube-controller-manager" "${common[@]}" "${kcm_node_grace[@]}" --secure-port "$kcm_port" \
  --cert-dir "$pki/kcm" --service-account-private-key-file "$pki/sa.key" \
  --root-ca-file "$pki/ca.crt" --use-service-account-credentials --controllers '*'
start kube-scheduler "$bin/kube-scheduler" "${common[@]}" --secure-port "$sched_port" --cert-dir "$pki/sched"
{
  echo "apiVersion: config.kwok.x-k8s.io/v1alpha1"
  echo "kind: KwokConfiguration"
  echo "options:"
  echo "  nodeLeaseDurationSeconds: 40"
  echo "  nodeLeaseParallelism: 4"
  echo "  nodePlayStageParallelism: 4"
  echo "  podPlayStageParallelism: 8"
  echo "  podsOnNodeSyncParallelism: 2"
  "$bin/kwok-stages"
} >"$dir/kwok.yaml"
if $real_node; then
  log "the real node (logs in $dir/node/logs)"
  start node "$here/node.sh" --dir "$dir/node" --bin "$bin" --kubeconfig "$kubeconfig" \
    --ca "$pki/ca.crt" --images "$images"
  start provisioner "$bin/provisioner" --kubeconfig "$kubeconfig" \
    --local-dir "$dir/node/volumes" --node hs-node
else
  start kwok "$bin/kwok" --config "$dir/kwok.yaml" --kubeconfig "$kubeconfig" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --cidr 10.128.0.1/16 --node-ip 10.127.0.1
  start provisioner "$bin/provisioner" --kubeconfig "$kubeconfig"
fi

# Simulated nodes, and storage classes served by the provisioner. "standard" is the default;
# "sdc-encrypted" mirrors the data centre's encrypted class.
{
  for i in $(seq 0 $((nodes - 1))); do
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: kwok-node-$i
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: kwok-node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
EOF
  done
  for class in standard sdc-encrypted; do
    cat <<EOF
---
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: $class
  annotations:
    storageclass.kubernetes.io/is-default-class: "$([ "$class" = standard ] && echo true || echo false)"
provisioner: testenv.sdc.gov.rs/local
reclaimPolicy: Delete
volumeBindingMode: Immediate
allowVolumeExpansion: true
EOF
  done
} >"$dir/bootstrap.yaml"
wait_for "bootstrap objects" 60 kubectl apply -f "$dir/bootstrap.yaml"
if $real_node; then
  wait_for "the real node" 300 test -f "$dir/node/ready"
else
  wait_for "nodes Ready" 60 nodes_ready
fi
wait_for "default service account" 60 kubectl get serviceaccount default -n default

cp "$kubeconfig" "$dir/kubeconfig"
echo "$dir/kubeconfig" >"$dir/ready"
log "ready in ${SECONDS}s: export KUBECONFIG=$dir/kubeconfig"

while :; do
  if [ -n "$owner" ] && ! kill -0 "$owner" 2>/dev/null; then
    log "owner $owner exited"
    exit 0
  fi
  for request in "$dir"/restart/*; do
    [ -f "$request" ] || continue
    name=$(basename "$request") down=$(cat "$request")
    log "restarting $name (killed, down ${down:-0}s)"
    restart "$name" "${down:-0}" || exit 1
    wait_for "$name after its restart" 120 healthy "$name"
    rm -f "$request"
  done
  check_alive
  sleep 1 &
  wait $! || true
done
