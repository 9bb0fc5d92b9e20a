package sharedpath

import (
	"os"
	"path/filepath"
	"testing"

	"mohawk/internal/strict"
)

// Root returns the absolute path of ../shared relative to the module root,
// or "" when it does not exist.
func Root() string {
	dir, err := os.Getwd()
	if err != nil {
		return ""
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			p := filepath.Join(dir, "..", "shared")
			if _, err := os.Stat(p); err == nil {
				return filepath.Clean(p)
			}
			return ""
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return ""
		}
		dir = parent
	}
}

// Path joins parts under ../shared. Without ../shared the test is skipped
// (failed in strict mode, see package strict); a file missing from an
// existing ../shared always fails it, since the references are then broken.
func Path(t testing.TB, parts ...string) string {
	t.Helper()
	r := Root()
	if r == "" {
		strict.Unavailable(t, "../shared (reference models and data) is not present beside the repository")
	}
	p := filepath.Join(append([]string{r}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("reference file %s is missing from ../shared: %v", filepath.Join(parts...), err)
	}
	return p
}
