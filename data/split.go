package data

import (
	"fmt"
	"math"
	"math/rand/v2"
)

// PCG stream constants: the second PCG seed word, one per use, so that equal
// seeds given to the split and to the sampler draw unrelated numbers.
const (
	splitStream   = 0x6d6f6861776b5350 // "mohawkSP"
	samplerStream = 0x6d6f6861776b5341 // "mohawkSA"
)

// SplitTrainVal splits s into a training and a validation stream by whole
// documents. The rule: the validation part has round(valFraction·NumDocs())
// documents, at least 1 and at most NumDocs()-1; they are the first ones of
// a permutation of the document indices drawn by math/rand/v2's Perm from
// a PCG seeded with (seed, a constant of this package); both parts keep the
// documents in corpus order. The
// same stream, fraction and seed always give the same split. Use separate
// train and validation files instead when the corpus comes with them.
func SplitTrainVal(s *Stream, valFraction float64, seed uint64) (train, val *Stream, err error) {
	n := s.NumDocs()
	if !(valFraction > 0 && valFraction < 1) {
		return nil, nil, fmt.Errorf("%s: validation fraction %v is not in (0, 1); set data.val_fraction to e.g. 0.01, or give a separate validation file", s.name, valFraction)
	}
	if n < 2 {
		return nil, nil, fmt.Errorf("%s: %d document(s) cannot be split into train and validation parts; give a separate validation file", s.name, n)
	}
	nVal := min(max(int(math.Round(valFraction*float64(n))), 1), n-1)
	isVal := make([]bool, n)
	for _, d := range rand.New(rand.NewPCG(seed, splitStream)).Perm(n)[:nVal] {
		isVal[d] = true
	}
	return s.subset(s.name+" (train)", isVal, false), s.subset(s.name+" (val)", isVal, true), nil
}

// subset returns the documents i with isVal[i] == want, in order.
func (s *Stream) subset(name string, isVal []bool, want bool) *Stream {
	out := &Stream{name: name, wide: s.wide, eos: s.eos, vocab: s.vocab, docs: []int{0}}
	if s.wide {
		out.u32 = appendDocs(out, s.u32, s.docs, isVal, want)
	} else {
		out.u16 = appendDocs(out, s.u16, s.docs, isVal, want)
	}
	return out
}

// appendDocs copies the chosen documents of src (offsets docs) and appends
// their end offsets to out.docs.
func appendDocs[T token](out *Stream, src []T, docs []int, isVal []bool, want bool) []T {
	var dst []T
	for i, v := range isVal {
		if v == want {
			dst = append(dst, src[docs[i]:docs[i+1]]...)
			out.docs = append(out.docs, len(dst))
		}
	}
	return dst
}
