package pipeline

import (
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"

	"mohawk/graphs/models/family"
)

// AttentionLayers is student.attention_layers: the layers of a hybrid
// student that keep the teacher's attention. In pipeline.yaml it is either
// a list of layer indices ([1, 3], or "1,3" as an override) or one rule:
//
//	attention_layers: {every: k}        # layers 0, k, 2k, … (k in 1..L)
//	attention_layers: {fraction: f}     # n = round(f·L) layers (f in (0, 1], n ≥ 1),
//	                                    # layer j·L/n rounded down for j = 0…n−1
//
// The fraction rule spaces the layers evenly from layer 0, as MambaInLlama
// places its attention layers (L = 32, f = 0.25: 0, 4, 8, …, 28). Unset
// (or an empty list): a pure student (no attention layer).
type AttentionLayers struct {
	Layers   []int   `mapstructure:"layers"`
	Every    int     `mapstructure:"every"`
	Fraction float64 `mapstructure:"fraction"`
}

// IsSet reports whether any layer or rule is given.
func (a AttentionLayers) IsSet() bool { return len(a.Layers) > 0 || a.Every != 0 || a.Fraction != 0 }

// String names the setting as pipeline.yaml gives it ("none" when unset).
func (a AttentionLayers) String() string {
	switch {
	case len(a.Layers) > 0:
		return fmt.Sprint(a.Layers)
	case a.Every != 0:
		return fmt.Sprintf("every %d", a.Every)
	case a.Fraction != 0:
		return fmt.Sprintf("fraction %g", a.Fraction)
	}
	return "none"
}

// attentionLayersHook decodes the list and string forms of
// student.attention_layers into AttentionLayers.
func attentionLayersHook(from, to reflect.Type, data any) (any, error) {
	if to != reflect.TypeOf(AttentionLayers{}) {
		return data, nil
	}
	switch d := data.(type) {
	case []any:
		return map[string]any{"layers": d}, nil
	case string:
		var list []any
		for _, f := range strings.Split(d, ",") {
			if f = strings.TrimSpace(f); f == "" {
				continue
			}
			n, err := strconv.Atoi(f)
			if err != nil {
				return nil, fmt.Errorf("student.attention_layers %q: want layer indices separated by commas", d)
			}
			list = append(list, n)
		}
		return map[string]any{"layers": list}, nil
	case int, int64:
		return map[string]any{"layers": []any{d}}, nil
	case bool: // an override's "1" or "0" reads as a boolean
		return nil, fmt.Errorf("student.attention_layers %v: want layer indices; as an override write one layer with a trailing comma (student.attention_layers=1,)", d)
	}
	return data, nil
}

// Resolve returns the ascending attention layers of an n-layer student, or
// an error naming the key at fault.
func (a AttentionLayers) Resolve(n int) ([]int, error) {
	given := 0
	for _, set := range []bool{len(a.Layers) > 0, a.Every != 0, a.Fraction != 0} {
		if set {
			given++
		}
	}
	if given > 1 {
		return nil, fmt.Errorf("student.attention_layers: give a list of layers, every or fraction, not several")
	}
	var out []int
	switch {
	case len(a.Layers) > 0:
		for j, i := range a.Layers {
			if i < 0 || i >= n {
				return nil, fmt.Errorf("student.attention_layers[%d] = %d is out of range: the student has layers 0…%d", j, i, n-1)
			}
			if slices.Contains(out, i) {
				return nil, fmt.Errorf("student.attention_layers[%d] = %d is listed twice", j, i)
			}
			out = append(out, i)
		}
		slices.Sort(out)
	case a.Every != 0:
		if a.Every < 1 || a.Every > n {
			return nil, fmt.Errorf("student.attention_layers.every %d must be in 1…%d (the student's layers)", a.Every, n)
		}
		for i := 0; i < n; i += a.Every {
			out = append(out, i)
		}
	case a.Fraction != 0:
		k := int(math.Round(a.Fraction * float64(n)))
		switch {
		case !(a.Fraction > 0 && a.Fraction <= 1):
			return nil, fmt.Errorf("student.attention_layers.fraction %g must be in (0, 1]", a.Fraction)
		case k < 1:
			return nil, fmt.Errorf("student.attention_layers.fraction %g of %d layers rounds to no attention layer; raise it to at least %g", a.Fraction, n, 0.5/float64(n))
		}
		for j := 0; j < k; j++ {
			out = append(out, j*n/k)
		}
	}
	return out, nil
}

// hybridIdentity is what the hybrid keys add to a run's student identity:
// nothing for a pure student.
func hybridIdentity(o StudentConfig) string {
	if !o.AttentionLayers.IsSet() {
		return ""
	}
	return fmt.Sprintf(" attention_layers %s train_attention %v", o.AttentionLayers, o.TrainAttention)
}

// studentChoices are the student overrides of o for a student of teacher
// t, student.attention_layers resolved against its layers.
func studentChoices(t family.Teacher, o StudentConfig) (family.StudentChoices, error) {
	ls, err := o.AttentionLayers.Resolve(t.Sizes().Layers)
	if err != nil {
		return family.StudentChoices{}, err
	}
	return family.StudentChoices{DState: o.DState, Heads: o.Heads, DConv: o.DConv, ChunkSize: o.ChunkSize, Expand: o.Expand, AttentionLayers: ls}, nil
}

// checkStudentHybrid compares student.attention_layers, when given, with the
// attention layers of a student checkpoint (student.path).
func checkStudentHybrid(s family.Student, o StudentConfig, dir string) error {
	if !o.AttentionLayers.IsSet() {
		return nil
	}
	sz := s.Sizes()
	want, err := o.AttentionLayers.Resolve(sz.Layers)
	if err != nil {
		return err
	}
	if !slices.Equal(want, sz.AttnLayers) {
		return fmt.Errorf("student.attention_layers selects layers %v but the checkpoint student.path %s has attention layers %v; drop student.attention_layers or make them agree", want, dir, sz.AttnLayers)
	}
	return nil
}
