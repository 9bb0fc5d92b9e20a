package pipeline

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
)

// copyDir copies a model directory so a test can damage it.
func copyDir(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dst, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dst
}

// TestBadTeacherInputs damages a real sharded checkpoint the way users do
// and checks each error names the file or key and what is wrong.
func TestBadTeacherInputs(t *testing.T) {
	t.Parallel()
	ref := shareddata.Path(t, "reference", "phi-tiny-en")
	tests := []struct {
		name   string
		damage func(dir string)
		want   []string
	}{
		{"missing shard", func(d string) { os.Remove(filepath.Join(d, "model-00002-of-00003.safetensors")) },
			[]string{"model-00002-of-00003.safetensors"}},
		{"truncated shard", func(d string) {
			p := filepath.Join(d, "model-00003-of-00003.safetensors")
			fi, _ := os.Stat(p)
			os.Truncate(p, fi.Size()-1000)
		}, []string{"model-00003-of-00003.safetensors", "truncated"}},
		{"config without a required key", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"hidden_size": 256,`, "", 1)), 0o644)
		}, []string{"hidden_size", "config.json"}},
		{"tensor of the wrong shape", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"intermediate_size": 1024,`, `"intermediate_size": 512,`, 1)), 0o644)
		}, []string{"mlp.fc1.weight", "shape"}},
		{"config with fewer layers than the checkpoint", func(d string) {
			p := filepath.Join(d, "config.json")
			b, _ := os.ReadFile(p)
			os.WriteFile(p, []byte(strings.Replace(string(b), `"num_hidden_layers": 6,`, `"num_hidden_layers": 4,`, 1)), 0o644)
		}, []string{"model.layers.4.* and model.layers.5.* in " + "DIR are not used", "num_hidden_layers is 4 but the checkpoint holds 6 layers"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, ref)
			tt.damage(dir)
			_, err := LoadTeacher(dir)
			if err == nil {
				t.Fatal("the damaged checkpoint loaded")
			}
			for _, w := range tt.want {
				if w = strings.ReplaceAll(w, "DIR", dir); !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// TestVocabularyMismatch points the pipeline at a student whose vocabulary
// differs from the teacher's.
func TestVocabularyMismatch(t *testing.T) {
	t.Parallel()
	student := shareddata.Path(t, "reference", "phimamba-random")
	cfg, path := tinyConfig(t, "  - {kind: eval}")
	cfg.Student.Path = student
	err := Validate(cfg, path)
	if err == nil || !strings.Contains(err.Error(), "vocabulary mismatch") {
		t.Fatalf("got %v, want a vocabulary mismatch", err)
	}
}

// TestConvertAuthorsCheckpoint converts the authors' pytorch_model.bin
// (saved by their save_pretrained) and checks every tensor equals the
// safetensors copy of the same weights.
func TestConvertAuthorsCheckpoint(t *testing.T) {
	t.Parallel()
	ref := shareddata.Path(t, "reference", "phimamba-random")
	in := t.TempDir()
	for _, f := range []string{"config.json", "pytorch_model.bin"} {
		b, err := os.ReadFile(filepath.Join(ref, f))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(in, f), b, 0o644)
	}
	out := t.TempDir()
	s, err := Convert(in, out)
	if err != nil {
		t.Fatal(err)
	}
	want, err := LoadStudent(ref, 1e-5) // reads model.safetensors
	if err != nil {
		t.Fatal(err)
	}
	back, err := LoadStudent(out, 1e-5)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Weights) != len(want.Weights) || len(back.Weights) != len(want.Weights) {
		t.Fatalf("tensor counts %d, %d, want %d", len(s.Weights), len(back.Weights), len(want.Weights))
	}
	for n, w := range want.Weights {
		if !equal(w, back.Weights[n]) {
			t.Errorf("%s differs after conversion", n)
		}
	}
}

// TestStudentTensorsAllUsed loads a student whose config.json says fewer
// layers than its weights hold, in mohawk's layout and the authors'
// (pytorch_model.bin): both must be refused naming the unused layers.
func TestStudentTensorsAllUsed(t *testing.T) {
	t.Parallel()
	ref := shareddata.Path(t, "reference", "phimamba-random")
	for _, weights := range []string{StudentWeightsFile, TorchWeightsFile} {
		t.Run(weights, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			for _, f := range []string{"config.json", weights} {
				b, err := os.ReadFile(filepath.Join(ref, f))
				if err != nil {
					t.Fatal(err)
				}
				if f == "config.json" {
					b = []byte(strings.ReplaceAll(string(b), `"n_layer": 2`, `"n_layer": 1`))
					b = []byte(strings.ReplaceAll(string(b), `"n_layers": 2`, `"n_layers": 1`))
				}
				if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			_, err := LoadStudent(dir, 1e-5)
			want := "backbone.layers.1.* in " + filepath.Join(dir, weights) + " are not used: config.json MixerModel.input.n_layer is 1 but the checkpoint holds 2 layers"
			if err == nil || !strings.Contains(err.Error(), want) {
				t.Fatalf("got %v\nwant an error containing %q", err, want)
			}
		})
	}
}

// TestUnusedTensorsMessage checks how unused tensors are named: whole
// layers beyond the config grouped with both counts, others by name, the
// list capped.
func TestUnusedTensorsMessage(t *testing.T) {
	t.Parallel()
	ln := layerNaming{Prefix: "m.layers.", Key: "n", Layers: 1}
	shape := []int64{2}
	set := func(names ...string) map[string][]int64 {
		m := map[string][]int64{}
		for _, n := range names {
			m[n] = shape
		}
		return m
	}
	want := set("m.layers.0.w", "head")
	var many []string
	for i := range maxListed + 3 {
		many = append(many, fmt.Sprintf("x%02d", i))
	}
	tests := []struct {
		name string
		have map[string][]int64
		want string // "" for no error
	}{
		{"exact", set("m.layers.0.w", "head"), ""},
		{"two extra layers", set("m.layers.0.w", "head", "m.layers.1.w", "m.layers.2.w", "m.layers.2.b"),
			"m.layers.1.* and m.layers.2.* in F are not used: config.json n is 1 but the checkpoint holds 3 layers; fix config.json"},
		{"one stray tensor", set("m.layers.0.w", "head", "m.layers.0.extra"),
			"m.layers.0.extra in F is not used; they are not part of a model with this config.json"},
		{"not a layer index", set("m.layers.0.w", "head", "m.layers.01.w"), "m.layers.01.w in F is not used"},
		{"capped list", set(append([]string{"m.layers.0.w", "head"}, many...)...),
			"x00, x01, x02, x03, x04, x05, x06, x07 and 3 more tensors in F are not used"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := unusedTensors("F", tt.have, want, "model", ln)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("got %v, want no error", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("got %v\nwant an error containing %q", err, tt.want)
			}
		})
	}
}
