package tokenizer

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
