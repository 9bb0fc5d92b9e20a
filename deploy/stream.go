package deploy

import (
	"strings"

	"mohawk/tokenizer"
)

// maxPending bounds the tokens a textStream holds back. A character is at
// most 4 UTF-8 bytes and every token carries at least one, so a real
// partial character never needs more; longer runs are invalid bytes.
const maxPending = 8

// textStream turns generated token ids into text pieces, holding back
// tokens while the decoded text ends in U+FFFD, which is how lossy decoding
// shows a character whose bytes are not all there yet. The pieces join to
// the decoding of all ids.
type textStream struct {
	tok     *tokenizer.Tokenizer
	pending []int64
}

// add takes the next id and returns the text it completes ("" while a
// character is incomplete).
func (s *textStream) add(id int64) (string, error) {
	s.pending = append(s.pending, id)
	text, err := s.tok.Decode(s.pending)
	if err != nil {
		s.pending = s.pending[:len(s.pending)-1]
		return "", err
	}
	if strings.HasSuffix(text, "\uFFFD") && len(s.pending) < maxPending {
		return "", nil
	}
	s.pending = s.pending[:0]
	return text, nil
}

// flush returns the text of the ids held back (at the end of generation).
func (s *textStream) flush() string {
	// Every pending id was decoded by add, so Decode cannot fail here.
	text, _ := s.tok.Decode(s.pending)
	s.pending = s.pending[:0]
	return text
}
