package graphtest

import (
	"math"
	"testing"

	"mohawk/tensors"
)

// TestGradClose feeds CheckGradients' verdict NaN and ±Inf on either side.
func TestGradClose(t *testing.T) {
	t.Parallel()
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		got, want float64
		close     bool
	}{
		{1, 1, true},
		{1e-9, 0, true},       // within abs
		{100, 100.0001, true}, // within rel of the larger
		{0.5, 0.6, false},
		{nan, 1, false},
		{1, nan, false},
		{nan, nan, false},
		{inf, 1, false},
		{1, -inf, false},
		{inf, inf, false},
	}
	for _, c := range cases {
		if got := GradClose(c.got, c.want, 1e-8, 1e-6); got != c.close {
			t.Errorf("GradClose(%v, %v) = %v, want %v", c.got, c.want, got, c.close)
		}
	}
}

// TestBF16Close feeds WantBF16Close's verdict NaN, ±Inf, mismatched sizes,
// equal tensors and errors on either side of 3%.
func TestBF16Close(t *testing.T) {
	t.Parallel()
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	vec := func(v ...float32) *tensors.Tensor { return tensors.FromFloat32([]int64{int64(len(v))}, v) }
	cases := []struct {
		name      string
		got, want *tensors.Tensor
		ok        bool
	}{
		{"bfloat16-sized", vec(1.01, 2), vec(1, 2), true},
		{"too far", vec(1.1, 2), vec(1, 2), false},
		{"equal", vec(1, 2), vec(1, 2), false},
		{"NaN in got", vec(nan, 2), vec(1, 2), false},
		{"NaN in want", vec(1.01, 2), vec(nan, 2), false},
		{"Inf in got", vec(1.01, inf), vec(1, 2), false},
		{"Inf in want", vec(1.01, 2), vec(1, -inf), false},
		{"sizes differ", vec(1.01), vec(1, 2), false},
		{"missing output", nil, vec(1, 2), false},
	}
	for _, c := range cases {
		if _, _, err := BF16Close(c.got, c.want); (err == nil) != c.ok {
			t.Errorf("%s: BF16Close error %v, want ok=%v", c.name, err, c.ok)
		}
	}
}
