package pipeline

import (
	"fmt"

	"mohawk/tensors"
)

// checkTokenIDs refuses token ids outside [0, rows), the model's embedding
// rows, before they reach a graph (ONNX Runtime's Gather wraps negative
// ids and fails on large ones). ids is an int64 [batch, seq] tensor; name
// says where it came from and limit where rows came from. The first bad id
// is named with its position, and how many there are.
func checkTokenIDs(ids *tensors.Tensor, rows int64, name, limit string) error {
	vals := ids.Int64s()
	seq := ids.Shape[len(ids.Shape)-1]
	first, bad := -1, 0
	for i, id := range vals {
		if id < 0 || id >= rows {
			if first < 0 {
				first = i
			}
			bad++
		}
	}
	if bad == 0 {
		return nil
	}
	return fmt.Errorf("%s[%d][%d] is token id %d, outside the model's vocabulary [0, %d) (%s); %d of %d ids are out of range; token ids must be in [0, vocab_size)",
		name, int64(first)/seq, int64(first)%seq, vals[first], rows, limit, bad, len(vals))
}
