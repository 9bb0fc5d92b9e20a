package tokenizer

import "testing"

// BenchmarkEncode encodes val.txt with the reference tokenizer; MB/s is the
// encoding speed. warm reuses the piece cache across iterations, as when
// encoding a long corpus; cold empties it before each.
func BenchmarkEncode(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "val.txt"))
	b.Run("warm", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.Encode(text)
		}
	})
	b.Run("cold", func(b *testing.B) {
		b.SetBytes(int64(len(text)))
		for b.Loop() {
			tok.model.cache.reset()
			tok.Encode(text)
		}
	})
}

// BenchmarkDecode decodes the encoding of val.txt; MB/s counts text bytes.
func BenchmarkDecode(b *testing.B) {
	tok := referenceTokenizer(b)
	text := string(readShared(b, "data", "en", "val.txt"))
	ids := tok.Encode(text)
	b.SetBytes(int64(len(text)))
	for b.Loop() {
		if _, err := tok.Decode(ids); err != nil {
			b.Fatal(err)
		}
	}
}
