package shareddata

import (
	"math"
	"testing"

	"mohawk/tensors"
)

var (
	nan  = math.NaN()
	inf  = math.Inf(1)
	ninf = math.Inf(-1)
)

func vec(v ...float64) *tensors.Tensor { return tensors.FromFloat64([]int64{int64(len(v))}, v) }

// recorder is a testing.TB that counts failures instead of failing.
type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Helper()               {}
func (r *recorder) Logf(string, ...any)   {}
func (r *recorder) Errorf(string, ...any) { r.errors++ }

// TestComparisons feeds the comparison helpers NaN, ±Inf and mismatched
// sizes on either side: each must fail, and close finite pairs must pass.
func TestComparisons(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		got, want *tensors.Tensor
		pass      bool
	}{
		{"equal", vec(1, 2, 3), vec(1, 2, 3), true},
		{"within tolerance", vec(1, 2, 3), vec(1, 2, 3+5e-5), true},
		{"beyond tolerance", vec(1, 2, 3), vec(1, 2, 3.1), false},
		{"NaN in got", vec(1, nan, 3), vec(1, 2, 3), false},
		{"NaN in want", vec(1, 2, 3), vec(nan, 2, 3), false},
		{"NaN both", vec(nan), vec(nan), false},
		{"+Inf in got", vec(1, 2, inf), vec(1, 2, 3), false},
		{"-Inf in want", vec(1, 2, 3), vec(1, ninf, 3), false},
		{"Inf both", vec(inf), vec(inf), false},
		{"NaN after a large error", vec(10, nan), vec(0, 0), false},
		{"got shorter", vec(1, 2), vec(1, 2, 3), false},
		{"want shorter", vec(1, 2, 3), vec(1, 2), false},
		{"nil got", nil, vec(1), false},
	}
	for _, c := range cases {
		d := MaxAbsDiff(c.got, c.want)
		if got := d <= 1e-4; got != c.pass {
			t.Errorf("%s: MaxAbsDiff = %v, passes 1e-4: %v, want %v", c.name, d, got, c.pass)
		}
		if got := !(d > 1e-4); got != c.pass {
			t.Errorf("%s: MaxAbsDiff = %v, d > 1e-4 misjudges it", c.name, d)
		}
		for _, check := range []struct {
			name string
			f    func(testing.TB)
		}{
			{"WantClose", func(tb testing.TB) { WantClose(tb, c.name, c.got, c.want, 1e-4) }},
			{"WantCloseRel", func(tb testing.TB) { WantCloseRel(tb, c.name, c.got, c.want, 1e-4) }},
		} {
			r := &recorder{TB: t}
			check.f(r)
			if (r.errors == 0) != c.pass {
				t.Errorf("%s: %s reported %d errors, want pass=%v", c.name, check.name, r.errors, c.pass)
			}
		}
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	cases := []struct {
		got, want, abs, rel float64
		close               bool
	}{
		{1, 1, 0, 0, true},
		{1, 1 + 1e-9, 1e-8, 0, true},
		{1, 1.1, 1e-8, 0, false},
		{100, 101, 0, 0.02, true},
		{100, 103, 0, 0.02, false},
		{nan, 1, 1, 1, false},
		{1, nan, 1, 1, false},
		{nan, nan, 1, 1, false},
		{inf, 1, 1, 1, false},
		{1, inf, 1, 1, false},
		{inf, inf, 1, 1, false},
		{ninf, ninf, 1, 1, false},
	}
	for _, c := range cases {
		if got := Close(c.got, c.want, c.abs, c.rel); got != c.close {
			t.Errorf("Close(%v, %v, abs %g, rel %g) = %v, want %v", c.got, c.want, c.abs, c.rel, got, c.close)
		}
	}
}
