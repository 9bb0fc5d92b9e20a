package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
)

// TestTokenizerMustFitTheModel pairs the 8192-row reference models with a
// tokenizer.json whose added token has id 8192: exporting either model and
// opening a deployment folder must refuse it, naming the id and the rows.
func TestTokenizerMustFitTheModel(t *testing.T) {
	t.Parallel()
	c, w, src := tinyStudent(t)
	big := filepath.Join(t.TempDir(), TokenizerFile)
	b, err := os.ReadFile(filepath.Join(src, TokenizerFile))
	if err != nil {
		t.Fatal(err)
	}
	extra := `{"id": 8192, "content": "<|extra|>", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true}, `
	if err := os.WriteFile(big, []byte(strings.Replace(string(b), `"added_tokens": [`, `"added_tokens": [`+extra, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	check := func(what string, err error, tok, model string) {
		t.Helper()
		want := "tokenizer " + tok + ` has ids up to 8192 ("<|extra|>") but ` + model + " has 8192 embedding rows"
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v\nwant an error containing %q", what, err, want)
		}
	}
	check("ExportStudent", ExportStudent(t.TempDir(), c, w, big, Options{}), big, "the student")

	tdir := shareddata.Path(t, "reference", "phi-tiny-en")
	h, err := hfconfig.Load(tdir)
	if err != nil {
		t.Fatal(err)
	}
	check("ExportTeacher", ExportTeacher(t.TempDir(), phimamba.NewTeacher(h), shareddata.Load(t, tdir), big, Options{}), big, "the teacher (config.json vocab_size)")

	folder := ref(t, KindStudent).folder(t, Options{})
	dir := t.TempDir()
	ents, err := os.ReadDir(folder)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		from := filepath.Join(folder, e.Name())
		if e.Name() == TokenizerFile {
			from = big
		}
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, e.Name()), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	_, err = Open(dir, testRuntime)
	check("Open", err, filepath.Join(dir, TokenizerFile), "the model in "+dir+" (genai_config.json vocab_size)")
}
