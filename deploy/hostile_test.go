package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/internal/shareddata"
)

// TestTamperedSizes edits the sizes of a deployment folder's JSON files and
// checks that Open refuses them before allocating anything from them (a
// conv state of [-1, 10^6, 10^6] would be 4 TB of zeros), naming the file,
// the state or key, and the model's own figure.
func TestTamperedSizes(t *testing.T) {
	for _, m := range refModels(t) {
		src := m.folder(t, Options{})
		for _, c := range []struct {
			name, file string
			edit       func(map[string]any)
			want       []string
		}{
			{"every state's fixed axes ×10^6", ManifestFile, func(j map[string]any) {
				for _, s := range j["states"].([]any) {
					st := s.(map[string]any)
					shape := st["shape"].([]any)
					for k := 1; k < len(shape); k++ {
						if float64(k) != st["seq_axis"].(float64) {
							shape[k] = 1e6
						}
					}
				}
			}, []string{ManifestFile + ": state past_key_values.0.", "has shape [-1 1000000", "model.onnx declares dimension 1 as"}},
			{"a state of another rank", ManifestFile, func(j map[string]any) {
				s := j["states"].([]any)[0].(map[string]any)
				s["shape"] = append(s["shape"].([]any), 2.0)
			}, []string{ManifestFile + ": state past_key_values.0.", "model.onnx declares float32["}},
			{"vocab_size", GenAIConfigFile, func(j map[string]any) {
				j["model"].(map[string]any)["vocab_size"] = 1e12
			}, []string{GenAIConfigFile + ": model.vocab_size is 1000000000000, but", "declares output logits as [-1 -1 8192]"}},
			{"next_token without its width", ManifestFile, func(j map[string]any) {
				delete(j, "next_token_width")
			}, []string{ManifestFile + `: next_token "next_token" with next_token_width 0`}},
		} {
			t.Run(m.kind+"/"+c.name, func(t *testing.T) {
				dir := copyFolder(t, src)
				shareddata.EditJSON(t, filepath.Join(dir, c.file), c.edit)
				g, err := Open(dir, testRuntime)
				if err == nil {
					g.Close()
					t.Fatal("Open accepted the edited folder")
				}
				for _, w := range c.want {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
			})
		}
	}
}

// copyFolder copies the regular files of dir into a new temporary folder.
func copyFolder(t *testing.T, dir string) string {
	t.Helper()
	out := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(out, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
