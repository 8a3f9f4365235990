#!/usr/bin/env bash
# Runs one real Kubernetes node beside the local control plane, in the foreground, until it
# is told to stop (SIGINT or SIGTERM): containerd and runc (Debian packages), pod networking
# from the CNI plugins (a bridge of its own), the kubelet and kube-proxy (built from the
# pinned testenv/go.mod), kube-router as the NetworkPolicy agent (iptables and ipset), and
# CoreDNS for cluster.local. cluster.sh --real-node starts it; it writes NODE_DIR/ready once
# the node is Ready. Pods reach the API server (loopback only) through a relay on the bridge
# address, which cluster.sh advertises as the `kubernetes` Service's endpoint.
#
# Nothing leaves the machine: pods get a route to their own subnet and to the service range
# only (no default route), the bridge does no masquerading, a firewall rule drops any
# forwarded packet from the bridge towards another interface, and pods resolve names through
# CoreDNS on the bridge, which answers for cluster.local only (no forwarding).
#
# What it changes on the machine (kernel settings, the bridge, firewall rules, nftables
# tables, ipsets, mounts, network namespaces, cgroups) is recorded at start and restored or
# removed at stop. One real node at a time per machine (a lock says so).
#
# Usage: testenv/node.sh --dir NODE_DIR --bin BIN --kubeconfig FILE --ca CA_CERT --images DIR
#        testenv/node.sh --restore-only --dir DIR --bin BIN   (undo a node that died uncleanly)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
dir="" bin="" kubeconfig="" ca="" images="" restore_only=false
while [ $# -gt 0 ]; do
  case "$1" in
    --dir) dir=$2; shift 2 ;;
    --bin) bin=$2; shift 2 ;;
    --kubeconfig) kubeconfig=$2; shift 2 ;;
    --ca) ca=$2; shift 2 ;;
    --images) images=$2; shift 2 ;;
    --restore-only) restore_only=true; shift ;;
    *) echo "node.sh: unknown argument $1" >&2; exit 2 ;;
  esac
done
required=(dir bin kubeconfig ca images)
$restore_only && required=(dir bin)
for v in "${required[@]}"; do
  [ -n "${!v}" ] || { echo "node.sh: --$v is required" >&2; exit 2; }
done

# The node's fixed addresses: the pod subnet on the bridge (its gateway is the node IP) and
# the service range of the control plane (cluster.sh --service-cluster-ip-range).
readonly NODE_NAME=hs-node
readonly BRIDGE=hs-cni0
readonly POD_CIDR=10.244.0.0/24
readonly NODE_IP=10.244.0.1
readonly SERVICE_CIDR=10.96.0.0/16
readonly CGROUP_ROOT=hs-testenv
# Directories containerd, runc, the CNI plugins and the kubelet create at fixed places: those
# that did not exist before the node are removed with it.
readonly FIXED_DIRS=(/run/containerd /var/lib/cni /var/lib/kubelet /var/log/containers /var/log/pods /run/netns)
readonly SYSCTLS=(kernel.panic kernel.panic_on_oops vm.overcommit_memory net.ipv4.ip_forward
  net.bridge.bridge-nf-call-iptables net.bridge.bridge-nf-call-ip6tables)

log() { echo "node: $*" >&2; }

mkdir -p "$dir"
dir=$(cd "$dir" && pwd)
# What the node changes is recorded machine-wide (until reboot), so a node that could not
# stop cleanly is undone by the next one before it records the machine anew.
logs="$dir/logs" saved=/run/hs-testenv-node
mkdir -p "$logs"
sock="$dir/containerd/containerd.sock"

exec 9>/run/hs-testenv-node.lock
# A node that is still stopping (the previous test binary's) gets two minutes to finish.
flock -w 120 9 || { log "another real node runs on this machine (lock /run/hs-testenv-node.lock)"; exit 1; }

# shellcheck source=lib.sh
. "$here/lib.sh"

cgroup_dirs() {
  local h
  for h in /sys/fs/cgroup/*/; do
    [ -d "$h$CGROUP_ROOT" ] && echo "$h$CGROUP_ROOT"
  done
}

# Everything the node added, removed in reverse order; each step tolerates what never ran.
# Signals are ignored meanwhile: an interrupted cleanup would leave the machine changed.
cleanup() {
  trap '' INT TERM
  trap - EXIT
  set +eu +o pipefail
  rm -f "$dir/ready"
  log "stopping"
  local i p
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    p=${pids[$i]}
    [ "${names[$i]}" = containerd ] && continue
    kill -TERM "$p" 2>/dev/null || continue
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  # Every process of every pod lives in the node's cgroup subtree: kill them all.
  for _ in $(seq 1 50); do
    local left
    left=$(cgroup_dirs | while read -r d; do find "$d" -name cgroup.procs -exec cat {} + 2>/dev/null; done | sort -u)
    [ -z "$left" ] && break
    # shellcheck disable=SC2086
    kill -KILL $left 2>/dev/null || true
    sleep 0.1
  done
  pkill -KILL -f "containerd-shim-runc-v2 .*-address $sock" 2>/dev/null || true
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    [ "${names[$i]}" = containerd ] || continue
    p=${pids[$i]}
    kill -TERM "$p" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    kill -KILL "$p" 2>/dev/null || true
  done
  wait 2>/dev/null || true
  # Mounts under the node's directory (volumes, secrets, container root filesystems), then
  # the network namespaces the CRI made.
  awk -v d="$dir/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
    umount -l "$m" 2>/dev/null || true
  done
  if [ -d /run/netns ]; then
    for ns in /run/netns/cni-*; do
      [ -e "$ns" ] || continue
      grep -qx "$(basename "$ns")" "$saved/netns" 2>/dev/null && continue
      umount -l "$ns" 2>/dev/null || true
      rm -f "$ns"
    done
  fi
  for d in $(cgroup_dirs); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  restore_machine
  find /var/log/containers -maxdepth 1 -type l -lname "$dir/*" -delete 2>/dev/null || true
  rm -rf /var/lib/cni/results/hs-testenv-* 2>/dev/null || true
  rm -rf "$dir/containerd" "$dir/kubelet" "$dir/volumes" 2>/dev/null || true
  log "stopped"
}

# The machine as it was recorded in $saved: firewall, tables, ipsets, bridge, kernel settings.
restore_machine() {
  # Firewall: our rule, then whatever kube-proxy and kube-router added.
  iptables -t mangle -D FORWARD -i "$BRIDGE" ! -o "$BRIDGE" -j DROP 2>/dev/null || true
  if [ -x "$bin/kube-proxy" ]; then "$bin/kube-proxy" --cleanup >"$logs/kube-proxy-cleanup.log" 2>&1 || true; fi
  if [ -f "$saved/nft-tables" ]; then
    nft list tables 2>/dev/null | while read -r _ family name; do
      grep -qx "table $family $name" "$saved/nft-tables" || nft delete table "$family" "$name" 2>/dev/null || true
    done
  fi
  if [ -f "$saved/ipsets" ]; then
    ipset list -n 2>/dev/null | while read -r set; do
      grep -qx "$set" "$saved/ipsets" || ipset destroy "$set" 2>/dev/null || true
    done
  fi
  # Links the pods left behind (veth peers vanish with their namespace; this catches the rest).
  ip -o link show master "$BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1 | while read -r l; do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$BRIDGE" 2>/dev/null || true
  if [ -f "$saved/sysctl" ]; then
    while read -r k v; do sysctl -qw "$k=$v" 2>/dev/null || true; done <"$saved/sysctl"
  fi
  # What a node that died left under its own directory: mounts, then its cgroups.
  if [ -f "$saved/node-dir" ]; then
    awk -v d="$(cat "$saved/node-dir")/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r |
      while read -r m; do umount -l "$m" 2>/dev/null || true; done
  fi
  for d in $(cgroup_dirs); do find "$d" -depth -type d -exec rmdir {} \; 2>/dev/null || true; done
  if [ -f "$saved/dirs" ]; then
    while read -r d; do
      awk -v d="$d/" 'index($5, d) == 1 { print $5 }' /proc/self/mountinfo | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
      done
      rm -rf "$d"
    done <"$saved/dirs"
  fi
  rm -rf "$saved"
}
if $restore_only; then
  if [ -f "$saved/sysctl" ]; then
    log "a node did not stop cleanly: restoring what it recorded in $saved"
    restore_machine
  fi
  exit 0
fi

trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [ -f "$saved/sysctl" ]; then
  log "a previous node did not stop cleanly: restoring what it recorded in $saved"
  restore_machine
fi
log "recording what the node will change in $saved"
mkdir -p "$saved"
: >"$saved/sysctl"
for k in "${SYSCTLS[@]}"; do
  v=$(sysctl -n "$k" 2>/dev/null) && echo "$k $v" >>"$saved/sysctl"
done
nft list tables >"$saved/nft-tables" 2>/dev/null || : >"$saved/nft-tables"
ipset list -n >"$saved/ipsets" 2>/dev/null || : >"$saved/ipsets"
ls /run/netns >"$saved/netns" 2>/dev/null || : >"$saved/netns"
echo "$dir" >"$saved/node-dir"
: >"$saved/dirs"
for d in "${FIXED_DIRS[@]}"; do [ -e "$d" ] || echo "$d" >>"$saved/dirs"; done

# Forwarding between pods and services on the bridge, seen by iptables so policies apply.
sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1 net.bridge.bridge-nf-call-ip6tables=1

log "bridge $BRIDGE with $NODE_IP (pods in $POD_CIDR)"
ip link add "$BRIDGE" type bridge
ip addr add "$NODE_IP/24" dev "$BRIDGE"
ip link set "$BRIDGE" up
# Nothing from a pod goes anywhere but the bridge and the node itself.
iptables -t mangle -I FORWARD 1 -i "$BRIDGE" ! -o "$BRIDGE" -j DROP

mkdir -p "$dir/cni/net.d" "$dir/cni/ipam" "$dir/containerd" "$dir/kubelet" "$dir/pod-logs" "$dir/volumes"
cat >"$dir/cni/net.d/10-hs-testenv.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "hs-testenv-pods",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$dir/cni/ipam",
        "ranges": [[{ "subnet": "$POD_CIDR", "rangeStart": "10.244.0.10", "gateway": "$NODE_IP" }]],
        "routes": [{ "dst": "$SERVICE_CIDR" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF

# shellcheck disable=SC1091
. "$images/images.env"
cat >"$dir/containerd/config.toml" <<EOF
version = 2
root = "$dir/containerd/root"
state = "$dir/containerd/state"
disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.btrfs",
  "io.containerd.snapshotter.v1.zfs", "io.containerd.snapshotter.v1.devmapper",
  "io.containerd.snapshotter.v1.aufs", "io.containerd.tracing.processor.v1.otlp"]
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[debug]
  address = ""
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$HS_IMAGE_PAUSE"
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$dir/cni/net.d"
EOF

log "containerd"
start containerd containerd --config "$dir/containerd/config.toml"
wait_for containerd 30 ctr --address "$sock" version
log "importing images"
for archive in images.tar postgres17.tar; do
  ctr --address "$sock" -n k8s.io images import --all-platforms "$images/$archive" >>"$logs/images-import.log" 2>&1
done
ctr --address "$sock" -n k8s.io images ls -q >>"$logs/images-import.log"
for image in "$HS_IMAGE_POSTGRES15" "$HS_IMAGE_POSTGRES17"; do
  grep -qx "$image" "$logs/images-import.log" || { log "image import failed; see $logs/images-import.log"; exit 1; }
done

for v in dns_health dns_ready kubelet_port kubelet_healthz proxy_metrics proxy_healthz; do free_port "$v"; done

log "CoreDNS on $NODE_IP:53 (cluster.local only)"
cat >"$dir/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
  bind $NODE_IP
  errors
  health 127.0.0.1:$dns_health
  ready 127.0.0.1:$dns_ready
  cache 5
  kubernetes cluster.local in-addr.arpa {
    kubeconfig $kubeconfig
  }
}
.:53 {
  bind $NODE_IP
  errors
}
EOF
start coredns "$bin/coredns" -conf "$dir/Corefile"

# The API server listens on loopback; the `kubernetes` Service's endpoint is this address and
# the API server's port (cluster.sh advertises it), relayed here to loopback.
api_port=$(sed -n 's|^ *server: https://127.0.0.1:\([0-9]*\)$|\1|p' "$kubeconfig")
[ -n "$api_port" ] || { log "no https://127.0.0.1:PORT server in $kubeconfig"; exit 1; }
log "the API server relayed from $NODE_IP:$api_port (for pods)"
start apiserver-relay "$bin/tcpforward" -listen "$NODE_IP:$api_port" -to "127.0.0.1:$api_port"
echo "nameserver $NODE_IP" >"$dir/resolv.conf"

for h in /sys/fs/cgroup/*/; do
  case "$h" in */unified/) continue ;; esac
  mkdir -p "$h$CGROUP_ROOT"
done

log "kubelet ($NODE_NAME, $NODE_IP)"
cat >"$dir/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: /$CGROUP_ROOT
containerRuntimeEndpoint: unix://$sock
address: $NODE_IP
port: $kubelet_port
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $kubelet_healthz
authentication:
  anonymous: { enabled: false }
  webhook: { enabled: true }
  x509: { clientCAFile: $ca }
authorization:
  mode: Webhook
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
resolvConf: $dir/resolv.conf
podCIDR: $POD_CIDR
podLogsDir: $dir/pod-logs
failSwapOn: false
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1%
  imagefs.available: 1%
  nodefs.inodesFree: 1%
maxPods: 110
EOF
start kubelet "$bin/kubelet" --config "$dir/kubelet.yaml" --kubeconfig "$kubeconfig" \
  --root-dir "$dir/kubelet" --cert-dir "$dir/kubelet/pki" --hostname-override "$NODE_NAME" \
  --node-ip "$NODE_IP" --node-labels sdc.gov.rs/testenv-node=real

log "kube-proxy (iptables) and kube-router (network policies)"
cat >"$dir/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: iptables
clientConnection: { kubeconfig: $kubeconfig }
hostnameOverride: $NODE_NAME
clusterCIDR: $POD_CIDR
nodePortAddresses: ["$NODE_IP/32"]
bindAddress: 127.0.0.1
metricsBindAddress: 127.0.0.1:$proxy_metrics
healthzBindAddress: 127.0.0.1:$proxy_healthz
iptables: { localhostNodePorts: false, masqueradeAll: false }
conntrack: { maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s }
EOF
start kube-proxy "$bin/kube-proxy" --config "$dir/kube-proxy.yaml"
kubectl() { "$bin/kubectl" --kubeconfig "$kubeconfig" "$@"; }
wait_for "node $NODE_NAME Ready" 120 kubectl wait --for=condition=Ready "node/$NODE_NAME" --timeout=1s
# kube-router finds its node by name, so it starts once the kubelet has registered it.
start kube-router "$bin/kube-router" --kubeconfig "$kubeconfig" --hostname-override "$NODE_NAME" \
  --run-firewall=true --run-router=false --run-service-proxy=false --enable-cni=false \
  --service-cluster-ip-range "$SERVICE_CIDR" --health-port 0 --metrics-port 0
wait_for "CoreDNS ready" 60 curl -sf "http://127.0.0.1:$dns_ready/ready"
wait_for "kube-proxy healthy" 60 curl -sf "http://127.0.0.1:$proxy_healthz/healthz"
# kube-router serves its health on every interface, so it is off; its chains tell it is up.
wait_for "kube-router's policy chains" 60 iptables -S KUBE-ROUTER-FORWARD
echo "$NODE_NAME" >"$dir/ready"
log "ready in ${SECONDS}s"

while :; do
  check_alive
  sleep 1 &
  wait $! || true
done
