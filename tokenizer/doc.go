// Package tokenizer reads a Hugging Face tokenizer.json describing a
// byte-level BPE tokenizer (GPT-2, CodeGen, Phi) and encodes text to token
// ids and decodes ids back to text, reproducing the Hugging Face tokenizers
// library exactly:
//
//   - added tokens (such as "<|endoftext|>") are matched first in the raw
//     text, leftmost-longest, honouring their lstrip, rstrip, single_word and
//     normalized flags, and map straight to their ids;
//   - the text between them is split with the GPT-2 pre-tokenizer pattern
//     (implemented by a hand-written scanner, because Go's regexp has no
//     lookahead), each piece's bytes are mapped through the GPT-2
//     bytes-to-unicode table, and BPE merges are applied lowest rank first;
//   - decoding maps the token strings back to bytes and replaces invalid
//     UTF-8 the way Rust's String::from_utf8_lossy does.
//
// Encode applies no post-processing template: the ByteLevel post-processor
// of these files only adjusts offsets, so the ids are those of
// tokenizer.encode(text).ids in Hugging Face.
//
// It is a leaf package: it imports only the standard library, and the
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
