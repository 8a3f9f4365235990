// Package crds only anchors the pinned Prometheus Operator module (see go.mod).
package crds
