package llama

import (
	"math"
	"testing"

	"mohawk/hfconfig"
)

// TestFrequencies checks each scaling kind against values worked out by
// hand for θ = 10000 and 8 dimensions, whose unscaled inverse frequencies
// are 1, 0.1, 0.01 and 0.001 (wavelengths 2π·10^i).
func TestFrequencies(t *testing.T) {
	// llama3 with a pretraining context of 100, band edges 100/1 and 100/4:
	// the wavelength 2π stays, 20π lies in the band (smooth = (100/20π − 1)/3),
	// 200π and 2000π are divided by the factor 8.
	smooth := (100/(20*math.Pi) - 1) / 3
	for _, tc := range []struct {
		name      string
		rope      hfconfig.Rope
		maxPos    int
		want      []float64
		wantScale float64
	}{
		{"default", hfconfig.Rope{Type: "default", Theta: 10000}, 0, []float64{1, 0.1, 0.01, 0.001}, 1},
		{"linear", hfconfig.Rope{Type: "linear", Theta: 10000, Factor: 2}, 0, []float64{0.5, 0.05, 0.005, 0.0005}, 1},
		{"llama3", hfconfig.Rope{Type: "llama3", Theta: 10000, Factor: 8, LowFreqFactor: 1, HighFreqFactor: 4, OriginalMaxPositions: 100}, 0,
			[]float64{1, (1-smooth)*0.1/8 + smooth*0.1, 0.01 / 8, 0.001 / 8}, 1},
		// yarn, factor 64/16 = 4: the correction range for β 32 and 1 is
		// [floor(8·ln(16/64π)/(2·ln 10⁴)) ∨ 0, ceil(8·ln(16/2π)/(2·ln 10⁴))] = [0, 1],
		// so dimension 0 keeps its frequency and the others are divided by 4;
		// the attention factor is 0.1·ln 4 + 1.
		{"yarn", hfconfig.Rope{Type: "yarn", Theta: 10000, Factor: 4, OriginalMaxPositions: 16}, 64,
			[]float64{1, 0.1 / 4, 0.01 / 4, 0.001 / 4}, 0.1*math.Log(4) + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, scale := Frequencies(tc.rope, 8, tc.maxPos)
			if len(got) != len(tc.want) {
				t.Fatalf("%d frequencies, want %d", len(got), len(tc.want))
			}
			for i := range got {
				// float32 rounding of the hand value.
				if d := math.Abs(got[i]-tc.want[i]) / tc.want[i]; !(d <= 1e-6) {
					t.Errorf("inv[%d] = %v, want %v (relative error %.2g)", i, got[i], tc.want[i], d)
				}
			}
			if !(math.Abs(scale-tc.wantScale) <= 1e-12) {
				t.Errorf("scale %v, want %v", scale, tc.wantScale)
			}
		})
	}
}
