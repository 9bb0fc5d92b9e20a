package data

import (
	"fmt"
	"math"
	"unicode/utf8"
)

// ChoiceLength is the length lm-evaluation-harness normalizes acc_norm by:
// Python's len() of the choice, its number of Unicode code points (equal to
// its byte length for ASCII text).
func ChoiceLength(choice string) int { return utf8.RuneCountInString(choice) }

// AccNorm scores one multiple-choice question as lm-evaluation-harness does.
// lls[i] is the summed log-likelihood of choice i, lengths[i] its
// ChoiceLength. acc reports whether argmax(lls) is gold, accNorm whether
// argmax(lls[i]/lengths[i]) is gold, where argmax is numpy's: the first
// index on ties, and the first NaN if any (a zero length makes ±Inf or NaN,
// as in numpy). It panics unless lls and lengths have the same length.
func AccNorm(lls []float64, lengths []int, gold int) (acc, accNorm bool) {
	if len(lls) != len(lengths) {
		panic(fmt.Sprintf("data.AccNorm: %d log-likelihoods for %d choices", len(lls), len(lengths)))
	}
	norm := make([]float64, len(lls))
	for i, ll := range lls {
		norm[i] = ll / float64(lengths[i])
	}
	return argmax(lls) == gold, argmax(norm) == gold
}

// argmax is numpy.argmax: the index of the first maximum, or of the first
// NaN; -1 for no values.
func argmax(x []float64) int {
	best := -1
	for i, v := range x {
		if math.IsNaN(v) {
			return i
		}
		if best < 0 || v > x[best] {
			best = i
		}
	}
	return best
}
