package tokenizer

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
)

// readInputIDs reads the int64 tensor input_ids from a safetensors file: an
// 8-byte little-endian header length, a JSON header, then the data.
func readInputIDs(tb testing.TB, data []byte) (rows [][]int64) {
	tb.Helper()
	if len(data) < 8 {
		tb.Fatalf("safetensors file of %d bytes", len(data))
	}
	n := binary.LittleEndian.Uint64(data)
	if n > uint64(len(data)-8) {
		tb.Fatalf("safetensors header length %d beyond the file's %d bytes", n, len(data))
	}
	var header map[string]struct {
		DType       string   `json:"dtype"`
		Shape       []int    `json:"shape"`
		DataOffsets [2]int64 `json:"data_offsets"`
	}
	if err := json.Unmarshal(data[8:8+n], &header); err != nil {
		tb.Fatalf("safetensors header: %v", err)
	}
	info, ok := header["input_ids"]
	if !ok || info.DType != "I64" || len(info.Shape) != 2 {
		tb.Fatalf("input_ids is %+v, want a 2-d I64 tensor", info)
	}
	body := data[8+n:]
	begin, end := info.DataOffsets[0], info.DataOffsets[1]
	if begin < 0 || end < begin || end > int64(len(body)) || end-begin != int64(8*info.Shape[0]*info.Shape[1]) {
		tb.Fatalf("input_ids data_offsets %v do not fit shape %v in %d bytes", info.DataOffsets, info.Shape, len(body))
	}
	raw := body[begin:end]
	for r := range info.Shape[0] {
		row := make([]int64, info.Shape[1])
		for c := range row {
			row[c] = int64(binary.LittleEndian.Uint64(raw[8*(r*info.Shape[1]+c):]))
		}
		rows = append(rows, row)
	}
	return rows
}

// TestReferenceInputIDs checks the ids that Hugging Face produced for the
// reference batch: each row decodes to text of val.txt (documents joined by
// the end-of-text token), and encoding that text gives the row back.
func TestReferenceInputIDs(t *testing.T) {
	t.Parallel()
	tok := referenceTokenizer(t)
	rows := readInputIDs(t, readShared(t, "reference", "phi-tiny-en", "reference.safetensors"))
	val := string(readShared(t, "data", "en", "val.txt"))
	eos, ok := tok.SpecialID("<|endoftext|>")
	if !ok {
		t.Fatal("no special token <|endoftext|>")
	}
	if len(rows) != 2 || len(rows[0]) != 48 {
		t.Fatalf("input_ids has %d rows of %d, want 2 of 48", len(rows), len(rows[0]))
	}
	for i, row := range rows {
		t.Run(fmt.Sprintf("row%d", i), func(t *testing.T) {
			t.Parallel()
			text, err := tok.Decode(row)
			if err != nil {
				t.Fatal(err)
			}
			parts := strings.Split(text, "<|endoftext|>")
			if got, want := len(parts)-1, countOf(row, eos); got != want {
				t.Errorf("decoded text has %d end-of-text tokens, the row %d", got, want)
			}
			for _, part := range parts {
				if !strings.Contains(val, part) {
					t.Errorf("decoded text %q is not in val.txt", part)
				}
			}
			if got := tok.Encode(text); !slices.Equal(got, row) {
				t.Errorf("Encode(%q)\n got %v\nwant %v", text, got, row)
			}
		})
	}
}

func countOf(ids []int64, id int64) int {
	n := 0
	for _, x := range ids {
		if x == id {
			n++
		}
	}
	return n
}

// TestReferenceTokenCounts checks the token counts recorded when the teacher
// was trained with Hugging Face's tokenizer: each document of the split
// ("\n\n"-separated) encoded on its own, plus one end-of-text token.
func TestReferenceTokenCounts(t *testing.T) {
	t.Parallel()
	tok := referenceTokenizer(t)
	var metrics map[string]any
	if err := json.Unmarshal(readShared(t, "reference", "phi-tiny-en", "teacher_metrics.json"), &metrics); err != nil {
		t.Fatal(err)
	}
	for _, split := range []string{"val", "train"} {
		t.Run(split, func(t *testing.T) {
			t.Parallel()
			want, ok := metrics[split+"_tokens"].(float64)
			if !ok {
				t.Fatalf("teacher_metrics.json has no number %s_tokens; the reference is broken", split)
			}
			text := string(readShared(t, "data", "en", split+".txt"))
			got := 0
			for doc := range strings.SplitSeq(text, "\n\n") {
				got += len(tok.Encode(doc)) + 1
			}
			if got != int(want) {
				t.Errorf("%s.txt: %d tokens, teacher_metrics.json says %d", split, got, int(want))
			}
		})
	}
}

// TestReferenceRoundTrip decodes the encoding of every document of val.txt,
// and of the whole file, back to the same text.
func TestReferenceRoundTrip(t *testing.T) {
	t.Parallel()
	tok := referenceTokenizer(t)
	val := string(readShared(t, "data", "en", "val.txt"))
	docs := strings.Split(val, "\n\n")
	for i, doc := range append(docs, val) {
		got, err := tok.Decode(tok.Encode(doc))
		if err != nil {
			t.Fatalf("document %d: %v", i, err)
		}
		if got != doc {
			t.Errorf("document %d does not survive the round trip:\n got %q\nwant %q", i, got, doc)
		}
	}
}

// TestReferenceFacts checks facts about the reference (Phi-style) tokenizer.
func TestReferenceFacts(t *testing.T) {
	t.Parallel()
	tok := referenceTokenizer(t)
	if got := tok.VocabSize(); got != 8192 {
		t.Errorf("VocabSize() = %d, want 8192", got)
	}
	if id, ok := tok.SpecialID("<|endoftext|>"); !ok || id != 0 {
		t.Errorf(`SpecialID("<|endoftext|>") = %d, %v, want 0, true`, id, ok)
	}
	if tokStr, ok := tok.Token(0); !ok || tokStr != "<|endoftext|>" {
		t.Errorf("Token(0) = %q, %v", tokStr, ok)
	}
	theID, ok := tok.TokenID("Ġthe")
	if !ok {
		t.Fatal(`no token "Ġthe"`)
	}
	tests := []struct {
		text string
		want []int64
	}{
		{"", []int64{}},
		{"<|endoftext|>", []int64{0}},
		{" the", []int64{theID}},
		{" the<|endoftext|> the", []int64{theID, 0, theID}},
		{"<|endoftext|><|endoftext|>", []int64{0, 0}},
		{"\n", ids(t, tok, "\n")},
		{" ", ids(t, tok, " ")},
	}
	for _, tt := range tests {
		t.Run(tt.text, func(t *testing.T) {
			t.Parallel()
			if got := tok.Encode(tt.text); !slices.Equal(got, tt.want) {
				t.Errorf("Encode(%q) = %v, want %v", tt.text, got, tt.want)
			}
		})
	}
	// Every id names a token that names it back.
	for id := range int64(tok.VocabSize()) {
		s, ok := tok.Token(id)
		if !ok {
			t.Errorf("Token(%d) missing", id)
			continue
		}
		if back, ok := tok.TokenID(s); !ok || back != id {
			t.Errorf("TokenID(Token(%d) = %q) = %d, %v", id, s, back, ok)
		}
	}
	// Each byte alone is its own token.
	for b := range 128 {
		want := ids(t, tok, string(rune(b)))
		if got := tok.Encode(string(rune(b))); !slices.Equal(got, want) {
			t.Errorf("Encode(%q) = %v, want %v", string(rune(b)), got, want)
		}
	}
}

// TestReferenceSpellings checks that equivalent spellings of the reference
// file (legacy "a b" merges, a Sequence with a GPT-2 Split) encode alike.
func TestReferenceSpellings(t *testing.T) {
	t.Parallel()
	data := readShared(t, "reference", "phi-tiny-en", "tokenizer.json")
	tok := referenceTokenizer(t)
	val := string(readShared(t, "data", "en", "val.txt"))
	sample := val[:min(len(val), 50000)]
	want := tok.Encode(sample)

	tests := []struct {
		name string
		edit func(doc map[string]any)
	}{
		{"legacy merges", func(doc map[string]any) {
			m := model(doc)
			for i, pair := range m["merges"].([]any) {
				p := pair.([]any)
				m["merges"].([]any)[i] = p[0].(string) + " " + p[1].(string)
			}
		}},
		{"split then byte level", func(doc map[string]any) {
			doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{
				map[string]any{"type": "Split", "pattern": map[string]any{"Regex": gpt2Pattern}, "behavior": "Isolated", "invert": false},
				map[string]any{"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
			}}
		}},
		{"sequence of byte level", func(doc map[string]any) {
			doc["pre_tokenizer"] = map[string]any{"type": "Sequence", "pretokenizers": []any{doc["pre_tokenizer"]}}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var doc map[string]any
			if err := json.Unmarshal(data, &doc); err != nil {
				t.Fatal(err)
			}
			tt.edit(doc)
			edited, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			other, err := Parse(edited, tt.name)
			if err != nil {
				t.Fatal(err)
			}
			if got := other.Encode(sample); !slices.Equal(got, want) {
				t.Errorf("encodings differ from the original file's")
			}
		})
	}
}
