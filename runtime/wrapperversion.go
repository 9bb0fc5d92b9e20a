package runtime

import (
	"fmt"
	"runtime/debug"
)

// The Go wrapper whose unexported fields ortapi.go and fused.go reach by
// reflection (DynamicAdvancedSession.s.ortSession, SessionOptions.o), and
// the version those reaches were written for; go.mod pins it and
// TestWrapperVersionMatchesGoMod keeps the two in step.
const (
	wrapperModule  = "github.com/yalue/onnxruntime_go"
	wrapperVersion = "v1.27.0"
)

// checkWrapperVersion refuses a binary built with another onnxruntime_go
// than wrapperVersion (as a replace directive or a newer requirement of
// another module could make it), before any reflection runs.
func checkWrapperVersion() error {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return nil // no build info (a stripped binary): nothing to compare
	}
	return wrapperVersionError(info.Deps)
}

// wrapperVersionError judges the build's dependency list: an error when it
// names wrapperModule at another version (a replacement's version counts).
// A build that lists no such module, or a replacement without a version (a
// local directory), is accepted: there is no version to compare.
func wrapperVersionError(deps []*debug.Module) error {
	for _, m := range deps {
		if m.Path != wrapperModule {
			continue
		}
		v, how := m.Version, ""
		if m.Replace != nil {
			v, how = m.Replace.Version, fmt.Sprintf(" (replaced by %s)", m.Replace.Path)
		}
		if v == "" || v == "(devel)" || v == wrapperVersion {
			return nil
		}
		return fmt.Errorf("runtime: this binary is built with %s %s%s, but runtime reaches into its unexported fields "+
			"as laid out in %s; build with %s %s (go.mod), or check ortSessionPointer and addFused against the new "+
			"version and update wrapperVersion", wrapperModule, v, how, wrapperVersion, wrapperModule, wrapperVersion)
	}
	return nil
}
