package stages

import (
	"math"
	"testing"
)

func TestScheduleFactors(t *testing.T) {
	t.Parallel()
	near := func(a, b float64) bool { return math.Abs(a-b) < 1e-12 }
	tests := []struct {
		name string
		s    Schedule
		want map[int]float64 // step → factor
	}{
		{"wsd 10/80/10", Schedule{Kind: "wsd", Warmup: 0.1, Decay: 0.1, TotalSteps: 100},
			map[int]float64{0: 0.1, 4: 0.5, 9: 1, 10: 1, 50: 1, 89: 1, 90: 1, 95: 0.5, 99: 0.1}},
		{"wsd floor", Schedule{Kind: "wsd", Warmup: 0, Decay: 0.5, MinRatio: 0.2, TotalSteps: 10},
			map[int]float64{0: 1, 4: 1, 5: 1, 9: 0.2 + 0.8*0.2}},
		{"cosine", Schedule{Kind: "cosine", Warmup: 0.1, MinRatio: 0, TotalSteps: 21},
			map[int]float64{0: 0.5, 1: 1, 2: 1, 11: 0.5, 20: 0}},
		{"constant", Schedule{Kind: "constant", TotalSteps: 7}, map[int]float64{0: 1, 6: 1}},
		{"one step", Schedule{Kind: "wsd", Warmup: 0.1, Decay: 0.1, TotalSteps: 1}, map[int]float64{0: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := tt.s.Validate(); err != nil {
				t.Fatal(err)
			}
			for step, want := range tt.want {
				if got := tt.s.Factor(step); !near(got, want) {
					t.Errorf("step %d: factor %.6g, want %.6g", step, got, want)
				}
			}
		})
	}
	for _, bad := range []Schedule{{Kind: "linear"}, {Kind: "wsd", Warmup: 0.7, Decay: 0.5}, {Kind: "cosine", MinRatio: 2}} {
		if bad.Validate() == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
