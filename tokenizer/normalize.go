package tokenizer

import (
	"encoding/json"
	"fmt"
	"strings"

	"golang.org/x/text/unicode/norm"
)

// normalizer is the supported family of normalizers: a sequence of NFC,
// Replace of a fixed string and Prepend steps, applied in order to each
// stretch of text between added tokens. A nil normalizer changes nothing.
type normalizer []normStep

// normStep is one step: NFC when nfc is set, otherwise Replace of every
// occurrence of from by to, or, with from empty, Prepend of to to non-empty
// text.
type normStep struct {
	nfc      bool
	from, to string
}

func (n normalizer) apply(s string) string {
	for _, st := range n {
		switch {
		case st.nfc:
			s = norm.NFC.String(s)
		case st.from != "":
			s = strings.ReplaceAll(s, st.from, st.to)
		case s != "":
			s = st.to + s
		}
	}
	return s
}

// normalizerJSON holds the fields of a normalizer object that are read.
type normalizerJSON struct {
	Type        string            `json:"type"`
	Normalizers []json.RawMessage `json:"normalizers"`
	Prepend     *string           `json:"prepend"`
	Content     *string           `json:"content"`
	Pattern     *struct {
		Regex  *string `json:"Regex"`
		String *string `json:"String"`
	} `json:"pattern"`
}

// normalizer reads the normalizer at key: null, NFC, Replace with a String
// pattern, Prepend, or a Sequence of those.
func (p parser) normalizer(raw json.RawMessage, key string) (normalizer, error) {
	if isNull(raw) {
		return nil, nil
	}
	var c normalizerJSON
	if err := p.decode(raw, key, &c); err != nil {
		return nil, err
	}
	switch c.Type {
	case "NFC":
		return normalizer{{nfc: true}}, nil
	case "Prepend":
		if c.Prepend == nil || *c.Prepend == "" {
			return nil, p.errorf(key+".prepend", "missing or empty; Prepend needs the string to prepend")
		}
		return normalizer{{to: *c.Prepend}}, nil
	case "Replace":
		if c.Pattern == nil || c.Pattern.String == nil || *c.Pattern.String == "" {
			return nil, p.errorf(key+".pattern", "only a non-empty String pattern is supported in a Replace normalizer, not a Regex")
		}
		if c.Content == nil {
			return nil, p.errorf(key+".content", "missing; Replace needs the replacement")
		}
		return normalizer{{from: *c.Pattern.String, to: *c.Content}}, nil
	case "Sequence":
		var seq normalizer
		for i, item := range c.Normalizers {
			n, err := p.normalizer(item, fmt.Sprintf("%s.normalizers[%d]", key, i))
			if err != nil {
				return nil, err
			}
			seq = append(seq, n...)
		}
		return seq, nil
	}
	return nil, p.errorf(key+".type", "%q is not supported; supported normalizers are null, NFC, Replace (String pattern), Prepend and a Sequence of them", c.Type)
}

// addedTokens returns the added tokens marked normalized as the normalizer
// sees them: Hugging Face matches their normalized content in normalized
// text. Tokens that normalize to nothing are dropped.
func (n normalizer) addedTokens(tokens []*addedToken) []*addedToken {
	if n == nil {
		return tokens
	}
	out := make([]*addedToken, 0, len(tokens))
	for _, a := range tokens {
		c := *a
		if c.content = n.apply(a.content); c.content != "" {
			out = append(out, &c)
		}
	}
	return out
}
