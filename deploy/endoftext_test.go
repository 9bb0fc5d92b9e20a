package deploy

import (
	"encoding/json"
	"errors"
	"maps"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/internal/shareddata"
	"mohawk/tokenizer"
)

// TestTeacherEndOfText exports phi-tiny-en as a teacher whose config.json
// says null for bos_token_id and/or eos_token_id: genai_config.json must
// carry the tokenizer's end-of-text id in their place (pad_token_id is the
// EOS), the id looked up here by the token's text in the added_tokens of
// the tokenizer.json the export was given. phi-tiny-en's tokenizer has one
// added token, <|endoftext|>, which its tokenizer_config.json names; the
// case of a tokenizer_config.json naming another eos_token uses the Qwen2
// test tokenizer (testdata of package tokenizer), whose added tokens hold
// <|im_end|> besides <|endoftext|>. A tokenizer with no end-of-text token
// at all (the Llama-3 test tokenizer without a tokenizer_config.json) is
// an error asking for the ids in config.json.
func TestTeacherEndOfText(t *testing.T) {
	src := shareddata.Path(t, "reference", "phi-tiny-en")
	w := shareddata.Load(t, src)
	var base map[string]any
	if err := json.Unmarshal(readFile(t, filepath.Join(src, ConfigFile)), &base); err != nil {
		t.Fatal(err)
	}
	phiTok := filepath.Join(src, TokenizerFile)
	hf := func(name, config string) string {
		dir := t.TempDir()
		path := filepath.Join(dir, TokenizerFile)
		if err := os.WriteFile(path, readFile(t, filepath.Join("..", "tokenizer", "testdata", "hf", name+".json")), 0o644); err != nil {
			t.Fatal(err)
		}
		if config != "" {
			if err := os.WriteFile(filepath.Join(dir, "tokenizer_config.json"), []byte(config), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return path
	}
	for _, tc := range []struct {
		name     string
		bos, eos any    // config.json's bos_token_id and eos_token_id (nil: null; an absent Phi id is transformers' default, 1 or 2)
		tok      string // the tokenizer.json exported
		eot      string // the token standing in for a null id; "" wants the error
	}{
		{name: "phi, both null", tok: phiTok, eot: "<|endoftext|>"},
		{name: "phi, bos null", eos: 5, tok: phiTok, eot: "<|endoftext|>"},
		{name: "phi, eos null", bos: 7, tok: phiTok, eot: "<|endoftext|>"},
		{name: "qwen2, no tokenizer_config.json", tok: hf("qwen2", ""), eot: "<|endoftext|>"},
		{name: "qwen2 chat, eos_token <|im_end|>", tok: hf("qwen2", `{"eos_token": "<|im_end|>"}`), eot: "<|im_end|>"},
		{name: "llama3, no end of text", tok: hf("llama3", "")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := maps.Clone(base)
			cfg["bos_token_id"], cfg["eos_token_id"] = tc.bos, tc.eos
			data, err := json.Marshal(cfg)
			if err != nil {
				t.Fatal(err)
			}
			h, err := hfconfig.ParseValid(data, ConfigFile)
			if err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "out")
			err = ExportTeacher(dir, phimamba.NewTeacher(h), w, tc.tok, Options{})
			if tc.eot == "" {
				const want = "config.json has no bos/eos token id (set bos_token_id and eos_token_id)"
				if !errors.Is(err, tokenizer.ErrNoEndOfText) || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), tc.tok) {
					t.Errorf("error %v, want one containing %q and naming %s", err, want, tc.tok)
				}
				if _, err := ReadManifest(dir); err == nil {
					t.Errorf("a failed export left a %s behind", ManifestFile)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			eot := addedTokenID(t, tc.tok, tc.eot)
			want := map[string]int64{"bos_token_id": eot, "eos_token_id": eot}
			if tc.bos != nil {
				want["bos_token_id"] = int64(tc.bos.(int))
			}
			if tc.eos != nil {
				want["eos_token_id"] = int64(tc.eos.(int))
			}
			want["pad_token_id"] = want["eos_token_id"]
			var gc struct {
				Model map[string]json.RawMessage `json:"model"`
			}
			if err := json.Unmarshal(readFile(t, filepath.Join(dir, GenAIConfigFile)), &gc); err != nil {
				t.Fatal(err)
			}
			for k, v := range want {
				var got int64
				if err := json.Unmarshal(gc.Model[k], &got); err != nil || got != v {
					t.Errorf("genai_config.json model.%s = %s (%v), want %d (config.json ids %v, %v; end of text %s)", k, gc.Model[k], err, v, tc.bos, tc.eos, tc.eot)
				}
			}
		})
	}
}

// addedTokenID is the id of the added token whose content is text in the
// tokenizer.json at path, read with encoding/json.
func addedTokenID(t *testing.T, path, text string) int64 {
	t.Helper()
	var f struct {
		AddedTokens []struct {
			ID      int64  `json:"id"`
			Content string `json:"content"`
		} `json:"added_tokens"`
	}
	if err := json.Unmarshal(readFile(t, path), &f); err != nil {
		t.Fatal(err)
	}
	for _, a := range f.AddedTokens {
		if a.Content == text {
			return a.ID
		}
	}
	t.Fatalf("%s has no added token %s", path, text)
	return 0
}
