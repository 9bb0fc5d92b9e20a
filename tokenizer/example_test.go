package tokenizer_test

import (
	"fmt"
	"log"

	"mohawk/tokenizer"
)

// A tiny byte-level BPE tokenizer.json: "Ġ" is GPT-2's stand-in for the
// space byte. Real files, such as Phi's, have every byte in the vocabulary
// and thousands of merges; load them with tokenizer.Load.
const tinyJSON = `{
  "added_tokens": [{"id": 0, "content": "<|endoftext|>", "special": true, "normalized": false}],
  "normalizer": null,
  "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": false, "use_regex": true},
  "decoder": {"type": "ByteLevel"},
  "model": {
    "type": "BPE",
    "vocab": {"<|endoftext|>": 0, "h": 1, "i": 2, "Ġ": 3, "Ġh": 4, "hi": 5, "Ġhi": 6, "!": 7},
    "merges": [["Ġ", "h"], ["h", "i"], ["Ġh", "i"]]
  }
}`

func Example() {
	tok, err := tokenizer.Parse([]byte(tinyJSON), "tiny.json")
	if err != nil {
		log.Fatal(err)
	}
	ids := tok.Encode("hi hi!<|endoftext|>")
	fmt.Println(ids)
	tokens := make([]string, len(ids))
	for i, id := range ids {
		tokens[i], _ = tok.Token(id)
	}
	fmt.Printf("%q\n", tokens)
	text, err := tok.Decode(ids)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Printf("%q\n", text)
	eos, _ := tok.SpecialID("<|endoftext|>")
	fmt.Println("end of text:", eos, "vocabulary:", tok.VocabSize())
	// Output:
	// [5 6 7 0]
	// ["hi" "Ġhi" "!" "<|endoftext|>"]
	// "hi hi!<|endoftext|>"
	// end of text: 0 vocabulary: 8
}
