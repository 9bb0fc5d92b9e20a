package hfconfig

import (
	"fmt"
	"strconv"
	"strings"
)

// CheckLayers refuses a layer count, read from a config file, that exceeds
// the layers the weights hold, before anything is sized by it: a model's
// layers are named prefix0., prefix1., … (for example "model.layers." in a
// Hugging Face Phi checkpoint, "backbone.layers." in a Phi-Mamba one). file
// and key name where the count came from (for example "config.json" and
// "num_hidden_layers"); the error names them with both figures. A count of
// 10^9 in a config would otherwise make a loader list 10^10 tensor shapes
// before it noticed that the weights lack them. A smaller count is left to
// the loaders' tensor check, which names the unused layers.
func CheckLayers(file, key string, n int, names []string, prefix string) error {
	seen := map[int]bool{}
	for _, name := range names {
		rest, ok := strings.CutPrefix(name, prefix)
		if !ok {
			continue
		}
		digits, _, _ := strings.Cut(rest, ".")
		if i, err := strconv.Atoi(digits); err == nil && i >= 0 && strconv.Itoa(i) == digits {
			seen[i] = true
		}
	}
	held := len(seen)
	if n <= held {
		return nil
	}
	for i := range held {
		if !seen[i] {
			return fmt.Errorf("%s: %s is %d, but the weights' layers %s* are not numbered 0 to %d (layer %d is missing); the weights are incomplete: use a complete checkpoint",
				file, key, n, prefix, held-1, i)
		}
	}
	return fmt.Errorf("%s: %s is %d, but the weights hold %d layers (%s0 to %s%d); set %s to %d or use the weights this config belongs to",
		file, key, n, held, prefix, prefix, held-1, key, held)
}
