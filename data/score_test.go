package data

import (
	"math"
	"testing"
)

func TestAccNorm(t *testing.T) {
	t.Parallel()
	nan := math.NaN()
	tests := []struct {
		name         string
		lls          []float64
		lengths      []int
		gold         int
		acc, accNorm bool
	}{
		{"both right", []float64{-5, -3, -4}, []int{1, 1, 1}, 1, true, true},
		{"length flips the choice", []float64{-10, -6}, []int{10, 3}, 0, false, true},
		{"length flips it away", []float64{-10, -6}, []int{10, 3}, 1, true, false},
		{"tie goes to the first", []float64{-1, -1}, []int{2, 2}, 0, true, true},
		{"tie never to a later one", []float64{-1, -1}, []int{2, 2}, 1, false, false},
		{"NaN wins as in numpy", []float64{-1, nan, 0}, []int{1, 1, 1}, 1, true, true},
		{"zero length gives -Inf", []float64{-1, -2}, []int{0, 5}, 1, false, true},
		{"zero length and zero ll give NaN", []float64{-1, 0}, []int{1, 0}, 1, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			acc, accNorm := AccNorm(tt.lls, tt.lengths, tt.gold)
			if acc != tt.acc || accNorm != tt.accNorm {
				t.Fatalf("acc %v acc_norm %v, want %v %v", acc, accNorm, tt.acc, tt.accNorm)
			}
		})
	}
	t.Run("mismatch panics", func(t *testing.T) {
		t.Parallel()
		defer func() {
			if recover() == nil {
				t.Error("no panic")
			}
		}()
		AccNorm([]float64{1}, []int{1, 2}, 0)
	})
}

func TestMultipleChoiceScore(t *testing.T) {
	t.Parallel()
	// "é" is one character for lm-evaluation-harness (Python's len), as here.
	q := MultipleChoice{Context: "c", Choices: []string{"éé", "abc"}, Gold: 0}
	if got := q.NormLengths(); got[0] != 2 || got[1] != 3 {
		t.Fatalf("lengths %v", got)
	}
	// Per character -1.2 < -1.1 picks choice 1; per byte (-0.6) it would be 0.
	q.Gold = 1
	if acc, accNorm := q.Score([]float64{-2.4, -3.3}); acc || !accNorm {
		t.Fatalf("acc %v acc_norm %v", acc, accNorm)
	}
	// Partial evaluation normalizes by the per-choice contexts, as
	// lm-evaluation-harness's doc_to_choice gives them for WinoGrande.
	w := MultipleChoice{Choices: []string{"a", "bb"}, Contexts: []string{"x a", "x bb"}, Continuation: " y", Gold: 1}
	if got := w.NormLengths(); got[0] != 3 || got[1] != 4 {
		t.Fatalf("partial evaluation lengths %v", got)
	}
}
