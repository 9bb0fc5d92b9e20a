package tokenizer

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// EncodeNoSpecial returns the token ids of text without the special tokens
// a TemplateProcessing post-processor adds around it, as Hugging Face's
// tokenizer.encode(text, add_special_tokens=False).ids would: for a
// Llama-3 tokenizer, Encode without its leading <|begin_of_text|>. Added
// tokens written in the text are still recognised. For a tokenizer without
// such a template it equals Encode.
func (t *Tokenizer) EncodeNoSpecial(text string) []int64 {
	ids := t.Encode(text)
	end := len(ids) - len(t.post.suffix)
	return ids[len(t.post.prefix):end:end]
}

// BOS returns the beginning-of-sequence token: the one special token a
// TemplateProcessing post-processor puts before every text (<s> of
// Llama-2, <|begin_of_text|> of Llama-3). It reports false when the
// tokenizer adds no token before the text, or several.
func (t *Tokenizer) BOS() (int64, bool) {
	if len(t.post.prefix) != 1 {
		return 0, false
	}
	return t.post.prefix[0], true
}

// DefaultEndOfText is the end-of-text token of GPT-2-style tokenizers (Phi,
// Qwen2 base): the document separator when nothing names another.
const DefaultEndOfText = "<|endoftext|>"

// ErrNoEndOfText is wrapped by EndOfText's error when the tokenizer has no
// end-of-text token at all: no tokenizer_config.json names an eos_token and
// DefaultEndOfText is not one of its special tokens. A corrupt or
// unreadable tokenizer_config.json, or one naming a token the tokenizer
// lacks, gives other errors.
var ErrNoEndOfText = errors.New("no end-of-text token")

// EndOfText returns the token that ends a document for the tokenizer.json
// at path, as Hugging Face's tokenizer.eos_token names it: the eos_token of
// the tokenizer_config.json beside it (a string, or an object with its
// content) when that file exists and names one (<|end_of_text|> of
// Llama-3, </s> of Llama-2 and Mistral, <|im_end|> of Qwen2 chat models),
// else DefaultEndOfText. The token must be one of t's special (added)
// tokens; the error names the file and the token otherwise, and wraps
// ErrNoEndOfText when nothing names a token and t has no DefaultEndOfText.
func EndOfText(path string, t *Tokenizer) (id int64, token string, err error) {
	token, source := DefaultEndOfText, path
	cfgPath := filepath.Join(filepath.Dir(path), "tokenizer_config.json")
	data, err := os.ReadFile(cfgPath)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return 0, "", fmt.Errorf("tokenizer: %w", err)
	default:
		var cfg struct {
			EOS json.RawMessage `json:"eos_token"`
		}
		if err := json.Unmarshal(data, &cfg); err != nil {
			return 0, "", fmt.Errorf("tokenizer: %s: %w (a Hugging Face tokenizer_config.json is a JSON object; fix the file or download it again)", cfgPath, err)
		}
		name, err := eosName(cfg.EOS)
		if err != nil {
			return 0, "", fmt.Errorf("tokenizer: %s: eos_token: %w", cfgPath, err)
		}
		if name != "" {
			token, source = name, cfgPath
		}
	}
	id, ok := t.SpecialID(token)
	if !ok {
		if source == path {
			return 0, "", fmt.Errorf("tokenizer: %s: %w: it has no special token %s and no tokenizer_config.json beside it naming another eos_token; add one (\"eos_token\": \"...\") naming the token that ends a document", path, ErrNoEndOfText, token)
		}
		return 0, "", fmt.Errorf("tokenizer: %s names eos_token %q, which is not a special token of %s", cfgPath, token, path)
	}
	return id, token, nil
}

// eosName reads tokenizer_config.json's eos_token: absent or null, a
// string, or an AddedToken object {"content": ...}.
func eosName(raw json.RawMessage) (string, error) {
	if isNull(raw) {
		return "", nil
	}
	var s string
	if err := json.Unmarshal(raw, &s); err == nil {
		return s, nil
	}
	var obj struct {
		Content *string `json:"content"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || obj.Content == nil {
		return "", fmt.Errorf("want a string or an object with a content string, got %.60s", raw)
	}
	return *obj.Content, nil
}
