package pipeline

import (
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mohawk/internal/shareddata"
)

// setJSON sets the dotted key (nested objects: "MixerModel.input.n_layer")
// of the JSON object in path to value.
func setJSON(t *testing.T, path, key string, value any) {
	t.Helper()
	shareddata.EditJSON(t, path, func(m map[string]any) {
		parts := strings.Split(key, ".")
		for _, p := range parts[:len(parts)-1] {
			m = m[p].(map[string]any)
		}
		m[parts[len(parts)-1]] = value
	})
}

// TestHugeLayerCount: a layer count of 10^9 in a config is refused against
// the layers the weights hold, quickly and before anything is sized by it
// (it made eval and convert grow by ~75 MB/s, listing 10^10 tensor
// shapes), by every loader: teacher, validation, mohawk's student layout
// and the authors' pytorch_model.bin under Convert.
func TestHugeLayerCount(t *testing.T) {
	t.Parallel()
	const huge = 1000000000
	teacher := func(t *testing.T) string {
		d := copyDir(t, shareddata.Path(t, "reference", "phi-tiny-en"))
		setJSON(t, filepath.Join(d, "config.json"), "num_hidden_layers", huge)
		return d
	}
	student := func(t *testing.T, ref string) string {
		d := copyDir(t, shareddata.Path(t, "reference", ref))
		p := filepath.Join(d, "config.json")
		setJSON(t, p, "MixerModel.input.n_layer", huge)
		setJSON(t, p, "Block1.n_layers", huge)
		return d
	}
	const teacherMsg = "config.json: num_hidden_layers is 1000000000, but the weights hold 6 layers (model.layers.0 to model.layers.5); set num_hidden_layers to 6"
	for _, c := range []struct {
		name string
		load func(t *testing.T) error
		want string
	}{
		{"LoadTeacher", func(t *testing.T) error { _, err := LoadTeacher(teacher(t)); return err }, teacherMsg},
		{"Validate", func(t *testing.T) error {
			cfg, path := tinyConfig(t, "  - {kind: eval}")
			cfg.Teacher.Path = teacher(t)
			return Validate(cfg, path)
		}, teacherMsg},
		{"LoadStudent", func(t *testing.T) error { _, err := LoadStudent(student(t, "phimamba-tiny-en"), 1e-5); return err },
			"config.json: MixerModel.input.n_layer is 1000000000, but the weights hold 6 layers (backbone.layers.0 to backbone.layers.5)"},
		{"Convert pytorch_model.bin", func(t *testing.T) error {
			in := student(t, "phimamba-random")
			os.Remove(filepath.Join(in, StudentWeightsFile)) // read the authors' pickle
			_, err := Convert(in, t.TempDir())
			return err
		}, "config.json: MixerModel.input.n_layer is 1000000000, but the weights hold"},
	} {
		t.Run(c.name, func(t *testing.T) {
			start := time.Now()
			err := c.load(t)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("error %v, want one containing %q", err, c.want)
			}
			if took := time.Since(start); !(took < 30*time.Second) {
				t.Errorf("took %v", took)
			}
		})
	}
}

// TestNonFiniteWeights: a teacher or student with a NaN or Inf weight is
// refused when loaded, naming the tensor, instead of giving perplexity NaN
// (eval) or a "lower the learning rate" error at step 1 (run).
func TestNonFiniteWeights(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name, ref, tensor string
		value             float32
		load              func(dir string) error
	}{
		{"teacher NaN", "phi-tiny-en", "lm_head.weight", float32(math.NaN()),
			func(dir string) error { _, err := LoadTeacher(dir); return err }},
		{"teacher -Inf", "phi-tiny-en", "model.layers.3.mlp.fc2.bias", float32(math.Inf(-1)),
			func(dir string) error { _, err := LoadTeacher(dir); return err }},
		{"student NaN", "phimamba-tiny-en", "backbone.layers.0.mixer.D", float32(math.NaN()),
			func(dir string) error { _, err := LoadStudent(dir, 1e-5); return err }},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := shareddata.Poisoned(t, shareddata.Path(t, "reference", c.ref), c.tensor, 1, c.value)
			err := c.load(dir)
			if want := "tensor " + c.tensor + " holds a non-finite value (element 1)"; err == nil || !strings.Contains(err.Error(), want) {
				t.Errorf("error %v, want one containing %q", err, want)
			}
		})
	}
}
