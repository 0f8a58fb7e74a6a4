package main

import (
	"runtime/debug"
	"strings"
	_ "unsafe" // for go:linkname

	"k8s.io/component-base/version"
)

// kube-apiserver reports the version that Kubernetes' release scripts stamp in with
// -ldflags -X. A plain `go build` leaves "v0.0.0-master", which breaks clients that
// check the server version (helm refuses a chart whose kubeVersion is ">=1.29.0-0").
// These variables are k8s.io/component-base/version's own; they are set from the
// k8s.io/kubernetes version in go.mod, so the two cannot drift apart.

//go:linkname gitVersion k8s.io/component-base/version.gitVersion
var gitVersion string

//go:linkname gitMajor k8s.io/component-base/version.gitMajor
var gitMajor string

//go:linkname gitMinor k8s.io/component-base/version.gitMinor
var gitMinor string

//go:linkname gitTreeState k8s.io/component-base/version.gitTreeState
var gitTreeState string

func stampKubernetesVersion() {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	for _, dep := range info.Deps {
		if dep.Path != "k8s.io/kubernetes" {
			continue
		}
		v := dep.Version
		if dep.Replace != nil && dep.Replace.Version != "" {
			v = dep.Replace.Version
		}
		parts := strings.SplitN(strings.TrimPrefix(v, "v"), ".", 3)
		if len(parts) < 2 {
			return
		}
		gitVersion, gitMajor, gitMinor, gitTreeState = v, parts[0], parts[1], "clean"
		// Get() reads GitVersion from a copy made at package init; refresh that copy too.
		_ = version.SetDynamicVersion(v)
		return
	}
}
