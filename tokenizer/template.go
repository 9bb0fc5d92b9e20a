package tokenizer

import (
	"encoding/json"
	"fmt"
)

// template is what a TemplateProcessing post-processor adds around the ids
// of a single sequence: the ids of its special tokens before and after the
// sequence ("$A").
type template struct {
	prefix, suffix []int64
}

type postProcessorJSON struct {
	Type        string            `json:"type"`
	Processors  []json.RawMessage `json:"processors"`
	Single      []templateItem    `json:"single"`
	SpecialToks map[string]struct {
		IDs []int64 `json:"ids"`
	} `json:"special_tokens"`
}

type templateItem struct {
	SpecialToken *struct {
		ID string `json:"id"`
	} `json:"SpecialToken"`
	Sequence *struct {
		ID string `json:"id"`
	} `json:"Sequence"`
}

// postProcessor reads the post_processor at key: null, ByteLevel (which
// only moves offsets), TemplateProcessing, or a Sequence of those. vocabSize
// bounds the template's ids.
func (p parser) postProcessor(raw json.RawMessage, key string, vocabSize int) (template, error) {
	if isNull(raw) {
		return template{}, nil
	}
	var c postProcessorJSON
	if err := p.decode(raw, key, &c); err != nil {
		return template{}, err
	}
	switch c.Type {
	case "ByteLevel":
		return template{}, nil
	case "Sequence":
		var out template
		for i, item := range c.Processors {
			t, err := p.postProcessor(item, fmt.Sprintf("%s.processors[%d]", key, i), vocabSize)
			if err != nil {
				return template{}, err
			}
			if len(t.prefix)+len(t.suffix) > 0 {
				if len(out.prefix)+len(out.suffix) > 0 {
					return template{}, p.errorf(key+".processors", "has two TemplateProcessing entries; only one is supported")
				}
				out = t
			}
		}
		return out, nil
	case "TemplateProcessing":
		return p.template(&c, key, vocabSize)
	}
	return template{}, p.errorf(key+".type", "%q is not supported; supported post-processors are null, ByteLevel, TemplateProcessing and a Sequence of them", c.Type)
}

func (p parser) template(c *postProcessorJSON, key string, vocabSize int) (template, error) {
	var t template
	seen := false
	for i, item := range c.Single {
		ikey := fmt.Sprintf("%s.single[%d]", key, i)
		switch {
		case item.Sequence != nil:
			if item.Sequence.ID != "A" || seen {
				return template{}, p.errorf(ikey, "a single-sequence template must hold the Sequence \"A\" exactly once")
			}
			seen = true
		case item.SpecialToken != nil:
			sp, ok := c.SpecialToks[item.SpecialToken.ID]
			if !ok {
				return template{}, p.errorf(ikey, "special token %q is not in %s.special_tokens", item.SpecialToken.ID, key)
			}
			for _, id := range sp.IDs {
				if id < 0 || id >= int64(vocabSize) {
					return template{}, p.errorf(key+".special_tokens", "%q has id %d outside the vocabulary [0, %d)", item.SpecialToken.ID, id, vocabSize)
				}
			}
			if seen {
				t.suffix = append(t.suffix, sp.IDs...)
			} else {
				t.prefix = append(t.prefix, sp.IDs...)
			}
		default:
			return template{}, p.errorf(ikey, "neither a SpecialToken nor a Sequence")
		}
	}
	if !seen {
		return template{}, p.errorf(key+".single", "has no Sequence \"A\"; the template would drop the text")
	}
	return t, nil
}
