package data

import (
	"fmt"

	"mohawk/tensors"
)

// EvalWindows returns the first n perplexity windows of s as an int64 tensor
// of shape [n, seqLen+1], following the evaluation protocol: window k is the
// seqLen+1 tokens starting at token k·seqLen, so consecutive windows share
// one token; the model reads a window's first seqLen tokens and is scored on
// its predictions of the last seqLen. It is an error to ask for more windows
// than the stream holds; the message says how many it does.
func EvalWindows(s *Stream, seqLen, n int) (*tensors.Tensor, error) {
	if seqLen < 1 || n < 1 {
		return nil, fmt.Errorf("evaluation windows of %s: sequence length %d and window count %d must both be at least 1", s.name, seqLen, n)
	}
	avail := max(s.Len()-1, 0) / seqLen
	if n > avail {
		return nil, fmt.Errorf("evaluation windows of %s: %d tokens hold %d windows of %d+1 tokens, not %d; evaluate fewer windows or use a longer validation file",
			s.name, s.Len(), avail, seqLen, n)
	}
	starts := make([]int, n)
	for k := range starts {
		starts[k] = k * seqLen
	}
	return windows(s, starts, seqLen+1), nil
}
