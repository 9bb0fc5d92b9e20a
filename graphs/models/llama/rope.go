package llama

import (
	"math"

	"mohawk/hfconfig"
)

// Frequencies returns the rotary embedding's inverse frequencies for heads
// of dim dimensions (dim/2 values, rounded to float32 as transformers keeps
// them) and the factor cos and sin are multiplied by (YaRN's attention
// factor; 1 for the other kinds). maxPos is max_position_embeddings. The
// kinds follow transformers' modeling_rope_utils: "default" θ^(−2i/dim),
// "linear" divides every frequency by the factor, "llama3" divides only the
// low frequencies and blends a middle band, "yarn" ramps between scaled and
// unscaled frequencies over the dimensions its β bounds pick.
func Frequencies(r hfconfig.Rope, dim, maxPos int) (inv []float64, scale float64) {
	half := dim / 2
	inv = make([]float64, half)
	for i := range inv {
		// transformers: base ** (arange(0, dim, 2) / dim) in float32.
		inv[i] = float64(float32(1) / float32(math.Pow(r.Theta, float64(float32(2*i)/float32(dim)))))
	}
	scale = 1
	switch r.Type {
	case "linear":
		for i := range inv {
			inv[i] = f32(inv[i] / r.Factor)
		}
	case "llama3":
		llama3(inv, r)
	case "yarn":
		scale = yarn(inv, r, dim, maxPos)
	}
	return inv, scale
}

func f32(x float64) float64 { return float64(float32(x)) }

// llama3 rescales inv in place: wavelengths longer than the pretraining
// context over low_freq_factor are divided by the factor, shorter than it
// over high_freq_factor are kept, and the band between is a blend.
func llama3(inv []float64, r hfconfig.Rope) {
	old := float64(r.OriginalMaxPositions)
	lowWave, highWave := old/r.LowFreqFactor, old/r.HighFreqFactor
	for i, f := range inv {
		wave := 2 * math.Pi / f
		switch {
		case wave > lowWave:
			inv[i] = f32(f / r.Factor)
		case wave < highWave:
		default:
			smooth := (old/wave - r.LowFreqFactor) / (r.HighFreqFactor - r.LowFreqFactor)
			inv[i] = f32((1-smooth)*f/r.Factor + smooth*f)
		}
	}
}

// yarn rescales inv in place and returns the attention factor.
func yarn(inv []float64, r hfconfig.Rope, dim, maxPos int) float64 {
	factor, orig := r.Factor, float64(maxPos)
	if r.OriginalMaxPositions > 0 {
		// transformers takes the factor as the ratio of the two contexts
		// when the pretraining one is given.
		orig = float64(r.OriginalMaxPositions)
		factor = float64(maxPos) / orig
	}
	mscale := func(s, m float64) float64 {
		if s <= 1 {
			return 1
		}
		return 0.1*m*math.Log(s) + 1
	}
	attention := r.AttentionFactor
	if attention == 0 {
		attention = mscale(factor, 1)
		if r.Mscale != 0 && r.MscaleAllDim != 0 {
			attention = mscale(factor, r.Mscale) / mscale(factor, r.MscaleAllDim)
		}
	}
	betaFast, betaSlow := r.BetaFast, r.BetaSlow
	if betaFast == 0 {
		betaFast = 32
	}
	if betaSlow == 0 {
		betaSlow = 1
	}
	correction := func(rotations float64) float64 {
		return float64(dim) * math.Log(orig/(rotations*2*math.Pi)) / (2 * math.Log(r.Theta))
	}
	low := math.Max(math.Floor(correction(betaFast)), 0)
	high := math.Min(math.Ceil(correction(betaSlow)), float64(dim-1))
	if low == high {
		high += 0.001
	}
	for i, f := range inv {
		ramp := math.Min(math.Max((float64(i)-low)/(high-low), 0), 1)
		extrapolate := 1 - ramp
		inv[i] = f32(f/factor*(1-extrapolate) + f*extrapolate)
	}
	return attention
}
