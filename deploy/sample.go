package deploy

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
)

// SamplingOptions choose the next token from logits.
type SamplingOptions struct {
	// Temperature divides the logits; 0 means greedy (the most likely
	// token, the lowest id on ties) and ignores the other fields.
	Temperature float64
	// TopK keeps the K most likely tokens (0: all).
	TopK int
	// TopP keeps the smallest set of most likely tokens whose probabilities
	// (after temperature and TopK) sum to at least TopP (0 or 1: all).
	TopP float64
	// Seed seeds the sampler's random source; equal seeds repeat a run.
	Seed uint64
}

// Validate reports every bad field at once.
func (o SamplingOptions) Validate() error {
	var errs []error
	if !(o.Temperature >= 0) || math.IsInf(o.Temperature, 0) {
		errs = append(errs, fmt.Errorf("sampling: temperature %v must be 0 (greedy) or positive", o.Temperature))
	}
	if o.TopK < 0 {
		errs = append(errs, fmt.Errorf("sampling: top-k %d must be 0 (off) or positive", o.TopK))
	}
	if !(o.TopP >= 0 && o.TopP <= 1) {
		errs = append(errs, fmt.Errorf("sampling: top-p %v must be in [0, 1] (0 or 1: off)", o.TopP))
	}
	return errors.Join(errs...)
}

// Sampler draws tokens according to SamplingOptions. It keeps its random
// source between calls; it is not safe for concurrent use.
type Sampler struct {
	o    SamplingOptions
	rng  *rand.Rand
	cand []candidate
}

type candidate struct {
	id    int64
	logit float64
	p     float64
}

// NewSampler checks o and returns a sampler seeded with o.Seed.
func NewSampler(o SamplingOptions) (*Sampler, error) {
	if err := o.Validate(); err != nil {
		return nil, err
	}
	return &Sampler{o: o, rng: rand.New(rand.NewPCG(o.Seed, 0x6d6f6861776b))}, nil
}

// Sample returns the id of the next token given one sequence's logits.
func (s *Sampler) Sample(logits []float32) int64 {
	if s.o.Temperature == 0 {
		return greedyPick(logits)
	}
	c := s.topK(logits)
	total := 0.0
	for i := range c {
		c[i].p = math.Exp(c[i].logit - c[0].logit)
		total += c[i].p
	}
	if p := s.o.TopP; p > 0 && p < 1 {
		sum := 0.0
		for i := range c {
			sum += c[i].p
			if sum >= p*total {
				c, total = c[:i+1], sum
				break
			}
		}
	}
	u := s.rng.Float64() * total
	for _, x := range c {
		if u -= x.p; u < 0 {
			return x.id
		}
	}
	return c[len(c)-1].id
}

// greedyPick is the id of the largest logit, the first on ties.
func greedyPick(logits []float32) int64 {
	best := 0
	for i, l := range logits {
		if l > logits[best] {
			best = i
		}
	}
	return int64(best)
}

// order sorts candidates: higher logit first, lower id on ties (so runs
// repeat exactly).
func order(a, b candidate) int {
	return cmp.Or(cmp.Compare(b.logit, a.logit), cmp.Compare(a.id, b.id))
}

// topK returns the TopK (all when 0) most likely candidates, best first,
// with temperature applied. Selecting into a sorted buffer costs one
// comparison for most of a large vocabulary.
func (s *Sampler) topK(logits []float32) []candidate {
	k := s.o.TopK
	if k <= 0 || k > len(logits) {
		k = len(logits)
	}
	c := s.cand[:0]
	for i, l := range logits {
		x := candidate{id: int64(i), logit: float64(l) / s.o.Temperature}
		if k == len(logits) {
			c = append(c, x)
			continue
		}
		if len(c) == k && order(x, c[k-1]) > 0 {
			continue
		}
		pos, _ := slices.BinarySearchFunc(c, x, order)
		if len(c) < k {
			c = append(c, candidate{})
		}
		copy(c[pos+1:], c[pos:len(c)-1])
		c[pos] = x
	}
	if k == len(logits) {
		slices.SortFunc(c, order)
	}
	s.cand = c
	return c
}
