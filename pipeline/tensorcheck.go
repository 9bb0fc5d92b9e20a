package pipeline

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// layerNaming says how a model family numbers its layers: the tensor name
// prefix before the layer index, the config key giving the layer count, and
// the count the config gives.
type layerNaming struct {
	Prefix string // e.g. "model.layers."
	Key    string // e.g. "num_hidden_layers"
	Layers int
}

// checkTensors compares the tensors a checkpoint holds (name → shape) with
// those a model built from its config needs: every needed tensor must be
// there with its shape, and every tensor there must be needed. source names
// the checkpoint in errors; what names the model ("teacher", "student").
// This is the one check every model loader (Hugging Face teachers, the
// students' layouts) and the config validation apply.
func checkTensors(source string, have, want map[string][]int64, what string, ln layerNaming) error {
	var errs []error
	for _, name := range sortedNames(want) {
		got, ok := have[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: missing tensor %s", source, name))
		case !slices.Equal(got, want[name]):
			errs = append(errs, fmt.Errorf("%s: tensor %s has shape %v, the %s's config needs %v", source, name, got, what, want[name]))
		}
	}
	if err := unusedTensors(source, have, want, what, ln); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// maxListed caps the unused tensors an error lists one by one.
const maxListed = 8

// unusedTensors names the tensors of have that want lacks. Whole layers
// beyond the config's layer count are named once each (prefix.N.*) together
// with both layer counts; other unused tensors are listed by name.
func unusedTensors(source string, have, want map[string][]int64, what string, ln layerNaming) error {
	held := 0 // layers the checkpoint holds: one more than its highest index
	extraLayers := map[int]bool{}
	var loose []string
	for _, name := range sortedNames(have) {
		idx, isLayer := layerIndex(name, ln.Prefix)
		if isLayer {
			held = max(held, idx+1)
		}
		if _, ok := want[name]; ok {
			continue
		}
		if isLayer && idx >= ln.Layers {
			extraLayers[idx] = true
			continue
		}
		loose = append(loose, name)
	}
	if len(extraLayers) == 0 && len(loose) == 0 {
		return nil
	}
	var parts []string
	for _, idx := range slices.Sorted(maps.Keys(extraLayers)) {
		parts = append(parts, fmt.Sprintf("%s%d.*", ln.Prefix, idx))
	}
	for i, name := range loose {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("%d more tensors", len(loose)-maxListed))
			break
		}
		parts = append(parts, name)
	}
	verb := "are"
	if len(parts) == 1 && !strings.HasSuffix(parts[0], ".*") {
		verb = "is"
	}
	msg := fmt.Sprintf("%s in %s %s not used", joinAnd(parts), source, verb)
	if len(extraLayers) > 0 {
		msg += fmt.Sprintf(": config.json %s is %d but the checkpoint holds %d layers", ln.Key, ln.Layers, held)
	}
	if len(loose) > 0 {
		msg += fmt.Sprintf("; they are not part of a %s with this config.json", what)
	}
	return errors.New(msg + "; fix config.json or point at the checkpoint it belongs to")
}

// layerIndex parses the layer number of a tensor named prefix + N + ".…".
func layerIndex(name, prefix string) (int, bool) {
	rest, ok := strings.CutPrefix(name, prefix)
	if !ok {
		return 0, false
	}
	num, _, _ := strings.Cut(rest, ".")
	idx, err := strconv.Atoi(num)
	if err != nil || idx < 0 || strconv.Itoa(idx) != num {
		return 0, false
	}
	return idx, true
}

// joinAnd joins "a", "a and b", "a, b and c".
func joinAnd(parts []string) string {
	if len(parts) <= 1 {
		return strings.Join(parts, "")
	}
	return strings.Join(parts[:len(parts)-1], ", ") + " and " + parts[len(parts)-1]
}
