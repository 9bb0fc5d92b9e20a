package pipeline

import (
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			dir := copyDir(t, ref)
			tt.damage(dir)
			_, _, err := LoadTeacher(dir)
			if err == nil {
				t.Fatal("the damaged checkpoint loaded")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
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
