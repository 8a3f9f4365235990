//go:build tools

// Package tools records the versitygw command as this module's dependency so `go mod tidy`
// keeps what build.sh builds.
package tools

import _ "github.com/versity/versitygw/cmd/versitygw"
