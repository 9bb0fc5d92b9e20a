// Package tokenizer reads a Hugging Face tokenizer.json describing a BPE
// tokenizer and encodes text to token ids and decodes ids back to text,
// reproducing the Hugging Face tokenizers library exactly. Two kinds are
// supported: byte-level BPE (GPT-2, CodeGen, Phi, Llama-3, Qwen2) and
// character-level SentencePiece-style BPE (Llama-2, Mistral, TinyLlama).
//
//   - added tokens (such as "<|endoftext|>") are matched first in the raw
//     text, leftmost-longest, honouring their lstrip, rstrip, single_word and
//     normalized flags, and map straight to their ids;
//   - the text between them goes through the normalizer (NFC, Replace,
//     Prepend, or a Sequence of them), then the added tokens marked
//     normalized are matched;
//   - byte-level: the text is split with the Split pattern (GPT-2, Llama-3
//     or Qwen2, each implemented by a hand-written scanner because Go's
//     regexp has no lookahead), each piece's bytes are mapped through the
//     GPT-2 bytes-to-unicode table, and BPE merges are applied lowest rank
//     first; decoding maps the token strings back to bytes and replaces
//     invalid UTF-8 the way Rust's String::from_utf8_lossy does;
//   - character-level: an optional Metaspace pre-tokenizer turns spaces
//     into "▁", the characters become vocabulary ids, <0xNN> byte-fallback
//     ids or the unknown token, and BPE merges run on them; decoding runs
//     the Replace, ByteFallback, Fuse, Strip and Metaspace decoders.
//
// Encode is encode(text, add_special_tokens=True).ids: a TemplateProcessing
// post-processor's special tokens (Llama-3's <|begin_of_text|>) are added;
// the ByteLevel post-processor only adjusts offsets.
//
// It is a leaf package: it imports only the standard library and
// golang.org/x/text/unicode/norm, and the
// pipeline, the data loaders and the evaluation code use it to turn text
// into the int64 ids fed to the teacher and the student.
//
// Errors: Load and Parse validate the whole file up front and return errors
// that name the file, the offending JSON key and what to do about it; they
// never panic on bad input. After a successful load, Encode cannot fail (text
// that the vocabulary cannot represent is handled as Hugging Face does), and
// Decode returns an error only for an id outside the vocabulary. A
// *Tokenizer from Load or Parse is safe for concurrent use; a Fork is for
// one goroutine at a time.
package tokenizer
