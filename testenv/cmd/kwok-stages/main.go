// Command kwok-stages prints the kwok stages the local control plane simulates with: nodes
// become Ready and keep a Lease, pods become Ready, pods owned by Jobs Succeed, and deleted
// pods go away. The stage definitions are the ones published in the pinned kwok module, so
// they always match the kwok binary built beside them.
package main

import (
	"fmt"
	"strings"

	nodefast "sigs.k8s.io/kwok/kustomize/stage/node/fast"
	nodelease "sigs.k8s.io/kwok/kustomize/stage/node/heartbeat-with-lease"
	podfast "sigs.k8s.io/kwok/kustomize/stage/pod/fast"
)

func main() {
	stages := []string{
		nodefast.DefaultNodeInit,
		nodelease.DefaultNodeHeartbeatWithLease,
		podfast.DefaultPodReady,
		podfast.DefaultPodComplete,
		podfast.DefaultPodDelete,
	}
	for _, s := range stages {
		fmt.Println("---")
		fmt.Println(strings.TrimSpace(s))
	}
}
