package shareddata

import (
	"os"
	"path/filepath"
	"testing"

	"mohawk/safetensors"
	"mohawk/tensors"
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

// Path joins parts under ../shared, skipping the test when it is missing.
func Path(t testing.TB, parts ...string) string {
	t.Helper()
	r := Root()
	if r == "" {
		t.Skip("../shared (reference models and data) is not present beside the repository")
	}
	p := filepath.Join(append([]string{r}, parts...)...)
	if _, err := os.Stat(p); err != nil {
		t.Skipf("reference file %s is missing", p)
	}
	return p
}

// Tensors loads every tensor of a safetensors file (a reference file) under
// ../shared.
func Tensors(t testing.TB, parts ...string) map[string]*tensors.Tensor {
	t.Helper()
	return Load(t, Path(t, parts...))
}

// Load reads all tensors of a safetensors file or checkpoint directory.
func Load(t testing.TB, path string) map[string]*tensors.Tensor {
	t.Helper()
	set, err := safetensors.OpenFileOrDir(path)
	if err != nil {
		t.Fatal(err)
	}
	defer set.Close()
	out := map[string]*tensors.Tensor{}
	for _, n := range set.Names() {
		x, err := set.Tensor(n)
		if err != nil {
			t.Fatal(err)
		}
		out[n] = x
	}
	return out
}

// MaxAbsDiff is max |a−b| over two float tensors of equal size, compared in
// float64.
func MaxAbsDiff(a, b *tensors.Tensor) float64 {
	x, y := a.AsFloat64().Float64s(), b.AsFloat64().Float64s()
	if len(x) != len(y) {
		return 1e300
	}
	m := 0.0
	for i := range x {
		d := x[i] - y[i]
		if d < 0 {
			d = -d
		}
		if d > m || d != d {
			m = d
		}
	}
	return m
}
