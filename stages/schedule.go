package stages

import (
	"fmt"
	"math"
)

// Schedule maps a 0-based step of a stage to a learning-rate multiplier.
type Schedule struct {
	Kind       string  // "wsd", "cosine" or "constant"
	Warmup     float64 // fraction of steps
	Decay      float64 // wsd: fraction of steps decayed linearly to MinRatio
	MinRatio   float64
	TotalSteps int
}

// Validate checks the schedule's fractions.
func (s Schedule) Validate() error {
	switch s.Kind {
	case "wsd", "cosine", "constant":
	default:
		return fmt.Errorf("schedule kind %q: want wsd, cosine or constant", s.Kind)
	}
	if s.Warmup < 0 || s.Decay < 0 || s.Warmup+s.Decay > 1 {
		return fmt.Errorf("schedule fractions warmup %g + decay %g must lie in [0, 1]", s.Warmup, s.Decay)
	}
	if s.MinRatio < 0 || s.MinRatio > 1 {
		return fmt.Errorf("schedule min_lr_ratio %g must lie in [0, 1]", s.MinRatio)
	}
	return nil
}

// Factor is the multiplier at step (0-based). Warmup rises linearly to 1
// reaching it at the last warmup step; WSD then holds 1 and decays linearly
// to MinRatio over the last Decay fraction; cosine decays from the end of
// warmup to MinRatio.
func (s Schedule) Factor(step int) float64 {
	n := max(1, s.TotalSteps)
	w := int(math.Round(s.Warmup * float64(n)))
	if s.Warmup > 0 {
		w = max(1, w)
	}
	if step < w {
		return float64(step+1) / float64(w)
	}
	switch s.Kind {
	case "wsd":
		d := int(math.Round(s.Decay * float64(n)))
		if s.Decay > 0 {
			d = max(1, d)
		}
		if d > 0 && step >= n-d {
			frac := float64(n-step) / float64(d) // 1 → 1/d
			return s.MinRatio + (1-s.MinRatio)*frac
		}
		return 1
	case "cosine":
		if n-w <= 1 {
			return 1
		}
		p := float64(step-w) / float64(n-w-1)
		return s.MinRatio + (1-s.MinRatio)*0.5*(1+math.Cos(math.Pi*p))
	}
	return 1
}
