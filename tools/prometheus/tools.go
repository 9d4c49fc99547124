//go:build tools

// Package tools pins the upstream command built from this module (see localcluster/build.py):
// promtool, which checks and unit-tests the chart's alerting rules.
package tools

import _ "github.com/prometheus/prometheus/cmd/promtool"
