package hfconfig

import (
	"fmt"
	"strings"
	"testing"
)

func TestCheckLayers(t *testing.T) {
	layers := func(n int, extra ...string) []string {
		out := append([]string{"model.embed_tokens.weight", "lm_head.weight"}, extra...)
		for i := range n {
			out = append(out, fmt.Sprintf("model.layers.%d.mlp.fc1.weight", i), fmt.Sprintf("model.layers.%d.mlp.fc1.bias", i))
		}
		return out
	}
	for _, c := range []struct {
		name  string
		n     int
		names []string
		want  string // "" for no error
	}{
		{"equal", 2, layers(2), ""},
		{"one layer", 1, layers(1), ""},
		{"a billion claimed", 1000000000, layers(2), "config.json: num_hidden_layers is 1000000000, but the weights hold 2 layers (model.layers.0 to model.layers.1); set num_hidden_layers to 2"},
		{"fewer claimed: left to the loaders' tensor check", 1, layers(2), ""},
		{"one more claimed", 3, layers(2), "num_hidden_layers is 3, but the weights hold 2 layers"},
		{"no layers held", 2, layers(0), "the weights hold 0 layers"},
		{"a gap", 4, layers(2, "model.layers.3.mlp.fc1.weight"), "layer 2 is missing"},
		{"not an index", 2, layers(2, "model.layers.x.mlp.fc1.weight", "model.layers.01.mlp.fc1.weight", "model.layers.-1.a"), ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := CheckLayers("config.json", "num_hidden_layers", c.n, c.names, "model.layers.")
			switch {
			case c.want == "" && err != nil:
				t.Errorf("unexpected error %v", err)
			case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
		})
	}
}
