package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"os"
	"path/filepath"
	"testing"

	"mohawk/tokenizer"
)

// TestTokenizeCommand checks that tokenize prints exactly the lines that
// Hugging Face tokenizers gave for the adversarial test file (written by
// tokenizer/testdata/hf/make_refs.js).
func TestTokenizeCommand(t *testing.T) {
	dir := filepath.Join("..", "..", "tokenizer", "testdata", "hf")
	for _, name := range []string{"llama3", "llama2"} {
		tok, err := tokenizer.Load(filepath.Join(dir, name+".json"))
		if err != nil {
			t.Fatal(err)
		}
		text, err := os.ReadFile(filepath.Join(dir, "adversarial.txt"))
		if err != nil {
			t.Fatal(err)
		}
		var got bytes.Buffer
		if err := writeTokenIDs(&got, tok, string(text), "\n\n"); err != nil {
			t.Fatal(err)
		}
		f, err := os.Open(filepath.Join(dir, name+".adversarial.ids.gz"))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		want, err := io.ReadAll(zr)
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.Bytes(), want) {
			t.Errorf("%s: tokenize output differs from Hugging Face's:\n got %q\nwant %q", name, got.Bytes(), want)
		}
	}
	if rc, stderr := stderrOf(t, "tokenize", "--tokenizer", filepath.Join(dir, "llama3.json"), "--separator", "", "x"); rc != 1 || !bytes.Contains([]byte(stderr), []byte("--separator")) {
		t.Errorf("empty separator: exit %d, stderr %q, want exit 1 naming --separator", rc, stderr)
	}
}
