package data

import "fmt"

// Stream is a tokenized corpus: every document's tokens followed by the
// end-of-text id, concatenated in corpus order. Tokens are stored in 16 bits
// when the vocabulary has at most 65536 entries, else in 32 bits. A Stream
// is immutable and safe for concurrent use.
type Stream struct {
	name   string
	wide   bool     // tokens are in u32, not u16
	u16    []uint16 // tokens when !wide
	u32    []uint32 // tokens when wide
	docs   []int    // document i is tokens [docs[i], docs[i+1]); its last token is eos
	eos    int64
	vocab  int
	cached bool
}

// token is the storage type of a stream's ids.
type token interface{ ~uint16 | ~uint32 }

// wideVocab reports whether ids of a vocabulary of this size need 32 bits.
func wideVocab(vocab int) bool { return vocab > 1<<16 }

// Name is the stream's source file, with " (train)" or " (val)" appended for
// the parts made by SplitTrainVal; errors about the stream use it.
func (s *Stream) Name() string { return s.name }

// Len is the number of tokens, end-of-text ids included.
func (s *Stream) Len() int {
	if s.wide {
		return len(s.u32)
	}
	return len(s.u16)
}

// At returns token i; it panics when i is outside [0, Len()).
func (s *Stream) At(i int) int64 {
	if s.wide {
		return int64(s.u32[i])
	}
	return int64(s.u16[i])
}

// Window returns a copy of the n tokens starting at start; it panics when
// they do not lie inside the stream.
func (s *Stream) Window(start, n int) []int64 {
	out := make([]int64, n)
	s.read(out, start)
	return out
}

// read copies len(dst) tokens starting at start into dst.
func (s *Stream) read(dst []int64, start int) {
	if start < 0 || len(dst) > s.Len()-start {
		panic(fmt.Sprintf("data: window [%d, %d) is outside stream %s of %d tokens", start, start+len(dst), s.name, s.Len()))
	}
	if s.wide {
		for i, v := range s.u32[start : start+len(dst)] {
			dst[i] = int64(v)
		}
		return
	}
	for i, v := range s.u16[start : start+len(dst)] {
		dst[i] = int64(v)
	}
}

// Docs returns the document offsets: document i is tokens [d[i], d[i+1]),
// its end-of-text id included, so len(d) is NumDocs()+1, d[0] is 0 and the
// last entry is Len(). The slice is shared: do not modify it.
func (s *Stream) Docs() []int { return s.docs }

// NumDocs is the number of documents.
func (s *Stream) NumDocs() int { return len(s.docs) - 1 }

// VocabSize is the vocabulary size of the tokenizer that made the stream;
// every token is below it.
func (s *Stream) VocabSize() int { return s.vocab }

// EOS is the end-of-text id that ends every document.
func (s *Stream) EOS() int64 { return s.eos }

// Cached reports whether Tokenize read the tokens from a valid cache file
// instead of encoding the source.
func (s *Stream) Cached() bool { return s.cached }

// Concat joins streams made with the same tokenizer (same vocabulary and
// end-of-text id) into one, documents in order.
func Concat(streams ...*Stream) (*Stream, error) {
	if len(streams) == 0 {
		return nil, fmt.Errorf("data: nothing to concatenate")
	}
	if len(streams) == 1 {
		return streams[0], nil
	}
	first := streams[0]
	out := &Stream{name: first.name, wide: first.wide, eos: first.eos, vocab: first.vocab, docs: []int{0}}
	for i, s := range streams {
		if s.vocab != first.vocab || s.eos != first.eos {
			return nil, fmt.Errorf("data: stream %s (vocabulary %d, end-of-text %d) does not match %s (vocabulary %d, end-of-text %d)",
				s.name, s.vocab, s.eos, first.name, first.vocab, first.eos)
		}
		if i > 0 {
			out.name += " + " + s.name
		}
		base := out.Len()
		out.u16 = append(out.u16, s.u16...)
		out.u32 = append(out.u32, s.u32...)
		for _, d := range s.docs[1:] {
			out.docs = append(out.docs, base+d)
		}
	}
	return out, nil
}

// FromTokens wraps ids as a one-document stream (benchmarks and tests);
// every id must lie below vocab.
func FromTokens(name string, ids []int64, eos int64, vocab int) (*Stream, error) {
	s := &Stream{name: name, wide: wideVocab(vocab), eos: eos, vocab: vocab, docs: []int{0, len(ids)}}
	for i, id := range ids {
		if id < 0 || id >= int64(vocab) {
			return nil, fmt.Errorf("data: token %d at %d is outside the vocabulary of %d", id, i, vocab)
		}
		if s.wide {
			s.u32 = append(s.u32, uint32(id))
		} else {
			s.u16 = append(s.u16, uint16(id))
		}
	}
	return s, nil
}
