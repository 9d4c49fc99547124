//go:build tools

// Package tools pins the upstream command built from this module (see Makefile).
package tools

import _ "helm.sh/helm/v3/cmd/helm"
