// Module crds pins the Prometheus Operator release whose CustomResourceDefinitions the
// monitoring tests install (the real PodMonitor and PrometheusRule APIs). Only its YAML is
// used; nothing of it is compiled.
module github.com/sdc-gov-rs/healthsystem-operator/testenv/crds

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
