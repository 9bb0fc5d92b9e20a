package shareddata

import (
	"encoding/json"
	"fmt"
	"maps"
	"math"
	"os"
	"path/filepath"
	"slices"
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

// Diff measures got against want in float64: the largest |got−want| and
// the largest |want| over their elements. It fails when either is nil, when
// their element counts differ, or when any element on either side is NaN
// or ±Inf, so no comparison of its result can pass by accident.
func Diff(got, want *tensors.Tensor) (maxDiff, maxWant float64, err error) {
	if got == nil || want == nil {
		return 0, 0, fmt.Errorf("missing tensor (got %v, want %v)", got != nil, want != nil)
	}
	x, y := got.AsFloat64().Float64s(), want.AsFloat64().Float64s()
	if len(x) != len(y) {
		return 0, 0, fmt.Errorf("%d elements %v, want %d %v", len(x), got.Shape, len(y), want.Shape)
	}
	for i := range x {
		if !finite(x[i]) || !finite(y[i]) {
			return 0, 0, fmt.Errorf("element %d is %v, want %v: not finite", i, x[i], y[i])
		}
		maxDiff = max(maxDiff, math.Abs(x[i]-y[i]))
		maxWant = max(maxWant, math.Abs(y[i]))
	}
	return maxDiff, maxWant, nil
}

// MaxAbsDiff is max |a−b| over two float tensors, compared in float64; it
// is +Inf where Diff fails (sizes differ, an element is NaN or ±Inf), so
// both d > tol and !(d <= tol) report such a pair as too far apart.
func MaxAbsDiff(a, b *tensors.Tensor) float64 {
	d, _, err := Diff(a, b)
	if err != nil {
		return math.Inf(1)
	}
	return d
}

// WantClose fails t unless max |got−want| ≤ tol, both finite and of one
// size; it logs the measured error either way (docs quote these logs).
func WantClose(t testing.TB, label string, got, want *tensors.Tensor, tol float64) {
	t.Helper()
	wantWithin(t, label, got, want, tol, 0)
}

// WantCloseRel fails t unless max |got−want| ≤ rel·max |want| (relative in
// max-norm), both finite and of one size; it logs the measured error.
func WantCloseRel(t testing.TB, label string, got, want *tensors.Tensor, rel float64) {
	t.Helper()
	wantWithin(t, label, got, want, 0, rel)
}

// wantWithin fails t unless max |got−want| ≤ max(abs, rel·max |want|).
func wantWithin(t testing.TB, label string, got, want *tensors.Tensor, abs, rel float64) {
	t.Helper()
	d, scale, err := Diff(got, want)
	if err != nil {
		t.Errorf("%s: %v", label, err)
		return
	}
	limit := max(abs, rel*scale)
	msg := fmt.Sprintf("%s: max |Δ| = %.3g, max |want| %.3g, allowed %.3g", label, d, scale, limit)
	if !(d <= limit) {
		t.Errorf("%s", msg)
		return
	}
	t.Logf("%s", msg)
}

// Close reports whether the scalars got and want are both finite and
// |got−want| ≤ max(abs, rel·|want|).
func Close(got, want, abs, rel float64) bool {
	d := math.Abs(got - want)
	return finite(got) && finite(want) && (d <= abs || d <= rel*math.Abs(want))
}

func finite(x float64) bool { return !math.IsNaN(x) && !math.IsInf(x, 0) }

// Poisoned copies the model directory src (config.json, tokenizer.json and
// its safetensors weights) into a temporary directory with the weights in
// one file, weights (model.safetensors for both layouts), as float32, and
// element index of tensor set to value (a NaN or ±Inf for fault tests).
func Poisoned(t testing.TB, src, tensor string, index int, value float32) string {
	t.Helper()
	w := Load(t, src)
	bad, ok := w[tensor]
	if !ok {
		t.Fatalf("%s has no tensor %s", src, tensor)
	}
	bad = bad.AsFloat32().Clone()
	bad.Float32s()[index] = value
	w[tensor] = bad
	dir := t.TempDir()
	for _, f := range []string{"config.json", "tokenizer.json"} {
		b, err := os.ReadFile(filepath.Join(src, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var named []safetensors.Named
	for _, n := range slices.Sorted(maps.Keys(w)) {
		named = append(named, safetensors.Named{Name: n, T: w[n]})
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), named, nil); err != nil {
		t.Fatal(err)
	}
	return dir
}

// EditJSON rewrites the JSON object in path with edit applied (tests that
// damage a config or manifest).
func EditJSON(t testing.TB, path string, edit func(map[string]any)) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var j map[string]any
	if err := json.Unmarshal(b, &j); err != nil {
		t.Fatal(err)
	}
	edit(j)
	if b, err = json.Marshal(j); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
