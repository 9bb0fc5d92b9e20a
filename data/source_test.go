package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
)

func TestReadDocuments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content string
		src                 Source // Path is filled in
		want                []string
	}{
		{"text default separator", "a.txt", "one\ntwo\n\nthree", Source{}, []string{"one\ntwo", "three"}},
		{"empty documents kept", "a.txt", "a\n\n\n\nb\n\n", Source{Format: "text"}, []string{"a", "", "b", ""}},
		{"three newlines", "a.txt", "a\n\n\nb", Source{}, []string{"a", "\nb"}},
		{"custom separator", "a.txt", "x<doc>y<doc>z", Source{Separator: "<doc>"}, []string{"x", "y", "z"}},
		{"separator ignored for jsonl", "a.jsonl", "{\"text\": \"a\\n\\nb\"}", Source{Format: "jsonl", Separator: "x"}, []string{"a\n\nb"}},
		{"empty file", "a.txt", "", Source{}, []string{""}},
		{"jsonl default field", "a.jsonl", "{\"text\": \"hello\", \"id\": 1}\n\n  \r\n{\"text\": \"\"}\r\n", Source{Format: "jsonl"}, []string{"hello", ""}},
		{"jsonl custom field and BOM", "a.jsonl", "\xef\xbb\xbf{\"body\": \"x\"}\n{\"body\": \"y\", \"text\": 3}", Source{Format: "jsonl", Field: "body"}, []string{"x", "y"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.src
			src.Path = writeFile(t, tt.file, tt.content)
			got, err := ReadDocuments(src)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tt.want) {
				t.Fatalf("documents %q, want %q", got, tt.want)
			}
		})
	}
}

func TestSourceErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, file, content string
		src                 Source
		want                []string // substrings of the error
	}{
		{"missing field", "train.jsonl", "{\"text\": \"a\"}\n{\"body\": \"b\"}", Source{Format: "jsonl"},
			[]string{"train.jsonl:2: field \"text\" is missing; set data.field to the key that holds the text"}},
		{"missing custom field", "train.jsonl", "\n\n{\"text\": \"a\"}", Source{Format: "jsonl", Field: "body"},
			[]string{"train.jsonl:3: field \"body\" is missing"}},
		{"not a string", "train.jsonl", "{\"text\": 17}", Source{Format: "jsonl"},
			[]string{"train.jsonl:1: field \"text\" is a number, not a string"}},
		{"null field", "train.jsonl", "{\"text\": null}", Source{Format: "jsonl"},
			[]string{"train.jsonl:1: field \"text\" is null"}},
		{"invalid JSON", "train.jsonl", "{\"text\": \"a\"}\n{\"text\": \"b\"", Source{Format: "jsonl"},
			[]string{"train.jsonl:2: invalid JSON", "one object per line"}},
		{"not an object", "train.jsonl", "[\"a\"]", Source{Format: "jsonl"},
			[]string{"train.jsonl:1: the line is not a JSON object"}},
		{"unknown format", "train.csv", "a", Source{Format: "csv"},
			[]string{"train.csv: unknown format \"csv\"", "\"text\", \"jsonl\" or \"parquet\""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			src := tt.src
			src.Path = writeFile(t, tt.file, tt.content)
			_, err := ReadDocuments(src)
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if _, err2 := Tokenize(context.Background(), src, bytes257, 256, StreamOptions{}); err2 == nil || err2.Error() != err.Error() {
				t.Errorf("Tokenize error %v, want the same as ReadDocuments", err2)
			}
		})
	}
	if _, err := ReadDocuments(Source{}); err == nil || !strings.Contains(err.Error(), "set data.path") {
		t.Errorf("no path: error %v", err)
	}
}

func TestTokenize(t *testing.T) {
	t.Parallel()
	s := tokenizeText(t, "ab\n\n\n\nc")
	if got, want := tokensOf(s), []int64{'a', 'b', 256, 256, 'c', 256}; !slices.Equal(got, want) {
		t.Fatalf("tokens %v, want %v", got, want)
	}
	if got, want := s.Docs(), []int{0, 3, 4, 6}; !slices.Equal(got, want) {
		t.Fatalf("docs %v, want %v", got, want)
	}
	if s.NumDocs() != 3 || s.EOS() != 256 || s.At(4) != 'c' || s.Cached() || s.wide {
		t.Fatalf("NumDocs %d, EOS %d, At(4) %d, Cached %v, wide %v", s.NumDocs(), s.EOS(), s.At(4), s.Cached(), s.wide)
	}
	if got := s.Window(1, 3); !slices.Equal(got, []int64{'b', 256, 256}) {
		t.Fatalf("Window(1, 3) = %v", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("Window past the end did not panic")
		}
	}()
	s.Window(4, 3)
}

// TestTokenizeWorkers checks that the stream does not depend on the number
// of workers, for both storage widths and both formats.
func TestTokenizeWorkers(t *testing.T) {
	t.Parallel()
	var text, jsonl strings.Builder
	for i := range 3000 {
		doc := strings.Repeat(fmt.Sprintf("doc %d ", i), i%50)
		if i > 0 {
			text.WriteString("\n\n")
		}
		text.WriteString(doc)
		fmt.Fprintf(&jsonl, "{\"text\": %q}\n", doc)
	}
	encoders := []struct {
		name string
		enc  byteEncoder
		eos  int64
		wide bool
	}{
		{"uint16", bytes257, 256, false},
		{"uint32", byteEncoder{vocab: 70000, offset: 66000}, 69999, true},
	}
	sources := []Source{
		{Path: writeFile(t, "c.txt", text.String())},
		{Path: writeFile(t, "c.jsonl", jsonl.String()), Format: "jsonl"},
	}
	for _, e := range encoders {
		for _, src := range sources {
			t.Run(e.name+"/"+src.Format, func(t *testing.T) {
				t.Parallel()
				var first *Stream
				for _, w := range []int{1, 2, 7} {
					s, err := Tokenize(context.Background(), src, e.enc, e.eos, StreamOptions{Workers: w})
					if err != nil {
						t.Fatal(err)
					}
					if s.wide != e.wide || s.NumDocs() != 3000 {
						t.Fatalf("wide %v, %d documents", s.wide, s.NumDocs())
					}
					if first == nil {
						first = s
						continue
					}
					sameStream(t, first, s)
				}
				docs, err := ReadDocuments(src)
				if err != nil {
					t.Fatal(err)
				}
				for i, d := range docs {
					want := append(e.enc.Encode(d), e.eos)
					if got := first.Window(first.Docs()[i], first.Docs()[i+1]-first.Docs()[i]); !slices.Equal(got, want) {
						t.Fatalf("document %d: %v, want %v", i, got, want)
					}
				}
			})
		}
	}
}

// badEncoder returns an out-of-vocabulary id for texts containing "!".
type badEncoder struct{ byteEncoder }

func (e badEncoder) Encode(s string) []int64 {
	if strings.Contains(s, "!") {
		return []int64{1, 999}
	}
	return e.byteEncoder.Encode(s)
}

func TestTokenizeErrors(t *testing.T) {
	t.Parallel()
	many := strings.Repeat("fine text\n\n", 5000) + "bad!\n\nfine\n\nbad!"
	// Bad documents in blocks of their own, 300 KiB apart.
	spread := strings.Repeat("fine text\n\n", 50000) + "bad!\n\n" + strings.Repeat("fine text\n\n", 30000) + "bad!"
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		src     Source
		enc     Encoder
		eos     int64
		opts    StreamOptions
		want    string
		wantErr error
	}{
		{"eos outside vocabulary", context.Background(), Source{Path: writeFile(t, "a.txt", "x")}, bytes257, 257, StreamOptions{},
			"end-of-text id 257 is outside the vocabulary of 257 ids", nil},
		{"negative eos", context.Background(), Source{Path: writeFile(t, "a.txt", "x")}, bytes257, -1, StreamOptions{},
			"end-of-text id -1", nil},
		{"empty vocabulary", context.Background(), Source{Path: writeFile(t, "a.txt", "x")}, byteEncoder{}, 0, StreamOptions{},
			"vocabulary of 0 ids", nil},
		{"missing file", context.Background(), Source{Path: "/nonexistent/corpus.txt"}, bytes257, 256, StreamOptions{},
			"/nonexistent/corpus.txt", nil},
		{"id outside vocabulary, first in document order", context.Background(), Source{Path: writeFile(t, "bad.txt", many)}, badEncoder{bytes257}, 256, StreamOptions{Workers: 2},
			"bad.txt: document 5000 at byte 55000: the tokenizer returned id 999, outside its vocabulary of 257 ids", nil},
		{"id outside vocabulary, first of several blocks", context.Background(), Source{Path: writeFile(t, "spread.txt", spread)}, badEncoder{bytes257}, 256, StreamOptions{Workers: 3},
			"spread.txt: document 50000 at byte 550000: the tokenizer returned id 999", nil},
		{"id outside vocabulary in jsonl", context.Background(), Source{Path: writeFile(t, "bad.jsonl", "{\"text\": \"ok\"}\n{\"text\": \"bad!\"}"), Format: "jsonl"}, badEncoder{bytes257}, 256, StreamOptions{},
			"bad.jsonl:2: the tokenizer returned id 999", nil},
		{"empty jsonl", context.Background(), Source{Path: writeFile(t, "e.jsonl", "\n\n"), Format: "jsonl"}, bytes257, 256, StreamOptions{},
			"e.jsonl has no documents", nil},
		{"cache without tokenizer identity", context.Background(), Source{Path: writeFile(t, "a.txt", "x")}, bytes257, 256, StreamOptions{CacheDir: t.TempDir()},
			"set StreamOptions.TokenizerID", nil},
		{"cancelled", cancelled, Source{Path: writeFile(t, "a.txt", "x")}, bytes257, 256, StreamOptions{},
			"", context.Canceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Tokenize(tt.ctx, tt.src, tt.enc, tt.eos, tt.opts)
			if err == nil {
				t.Fatal("no error")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("error %v, want %v", err, tt.wantErr)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q does not contain %q", err, tt.want)
			}
		})
	}
}

func TestTokenizeProgress(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	src := Source{Path: writeFile(t, "corpus.txt", strings.Repeat("some text\n\n", 10000))}
	if _, err := Tokenize(context.Background(), src, bytes257, 256, StreamOptions{Progress: &buf}); err != nil {
		t.Fatal(err)
	}
	if out := buf.String(); !strings.Contains(out, "tokenize corpus.txt") || !strings.Contains(out, "100%") {
		t.Fatalf("progress output %q lacks the description or completion", out)
	}
}
