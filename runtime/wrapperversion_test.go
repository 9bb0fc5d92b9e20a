package runtime

import (
	"os"
	"runtime/debug"
	"strings"
	"testing"
)

func TestWrapperVersionError(t *testing.T) {
	t.Parallel()
	other := &debug.Module{Path: "example.com/other", Version: "v9.9.9"}
	cases := []struct {
		name string
		deps []*debug.Module
		ok   bool
	}{
		{"the pinned version", []*debug.Module{other, {Path: wrapperModule, Version: wrapperVersion}}, true},
		{"a newer version", []*debug.Module{{Path: wrapperModule, Version: "v1.28.0"}}, false},
		{"an older version", []*debug.Module{{Path: wrapperModule, Version: "v1.26.0"}}, false},
		{"a pseudo-version", []*debug.Module{{Path: wrapperModule, Version: "v1.27.1-0.20260101000000-abcdef123456"}}, false},
		{"replaced by another version", []*debug.Module{{Path: wrapperModule, Version: wrapperVersion,
			Replace: &debug.Module{Path: "example.com/fork", Version: "v1.30.0"}}}, false},
		{"replaced by the pinned version", []*debug.Module{{Path: wrapperModule, Version: "v1.28.0",
			Replace: &debug.Module{Path: "example.com/fork", Version: wrapperVersion}}}, true},
		{"replaced by a local directory", []*debug.Module{{Path: wrapperModule, Version: wrapperVersion,
			Replace: &debug.Module{Path: "../onnxruntime_go"}}}, true},
		{"(devel)", []*debug.Module{{Path: wrapperModule, Version: "(devel)"}}, true},
		{"not listed", []*debug.Module{other}, true},
		{"no deps", nil, true},
	}
	for _, c := range cases {
		err := wrapperVersionError(c.deps)
		if (err == nil) != c.ok {
			t.Errorf("%s: error %v, want ok=%v", c.name, err, c.ok)
		}
		if err != nil && (!strings.Contains(err.Error(), wrapperVersion) || !strings.Contains(err.Error(), c.deps[0].Path)) {
			t.Errorf("%s: %v does not name the module and both versions", c.name, err)
		}
	}
	// This test binary is built from go.mod, so it passes the check.
	if err := checkWrapperVersion(); err != nil {
		t.Errorf("the test binary: %v", err)
	}
}

// TestWrapperVersionMatchesGoMod fails when go.mod moves onnxruntime_go
// without wrapperVersion (and the reflection it vouches for) following.
func TestWrapperVersionMatchesGoMod(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == wrapperModule {
			if f[1] != wrapperVersion {
				t.Errorf("go.mod requires %s %s; runtime's reflection was written for %s", wrapperModule, f[1], wrapperVersion)
			}
			return
		}
	}
	t.Errorf("go.mod does not require %s", wrapperModule)
}
