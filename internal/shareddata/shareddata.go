package shareddata

import (
	"testing"

	"mohawk/internal/sharedpath"

	"mohawk/safetensors"
	"mohawk/tensors"
)

// Root returns the absolute path of ../shared, or "" (see sharedpath).
func Root() string { return sharedpath.Root() }

// Path joins parts under ../shared (see sharedpath.Path).
func Path(t testing.TB, parts ...string) string {
	t.Helper()
	return sharedpath.Path(t, parts...)
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
