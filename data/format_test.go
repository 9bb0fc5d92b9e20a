package data

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/parquet-go/parquet-go"

	"mohawk/internal/shareddata"
)

// textRow is a row of the Parquet files the tests write.
type textRow struct {
	ID   int64  `parquet:"id"`
	Text string `parquet:"text,zstd"`
}

// writeParquet writes rows to a Parquet file at path with row groups of at
// most rowsPerGroup rows.
func writeParquet[T any](t testing.TB, path string, rows []T, rowsPerGroup int64) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	w := parquet.NewGenericWriter[T](f, parquet.MaxRowsPerRowGroup(rowsPerGroup), parquet.PageBufferSize(4<<10))
	if _, err := w.Write(rows); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// jsonLines writes docs as JSONL, one {"text": ...} object per line.
func jsonLines(t testing.TB, docs []string) []byte {
	t.Helper()
	var b bytes.Buffer
	for _, d := range docs {
		line, err := json.Marshal(map[string]string{"text": d})
		if err != nil {
			t.Fatal(err)
		}
		b.Write(append(line, '\n'))
	}
	return b.Bytes()
}

func gzipped(t testing.TB, b []byte) []byte {
	t.Helper()
	var out bytes.Buffer
	w := gzip.NewWriter(&out)
	if _, err := w.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes()
}

func zstded(t testing.TB, b []byte) []byte {
	t.Helper()
	w, err := zstd.NewWriter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	return w.EncodeAll(b, nil)
}

// TestFormatsGiveSameStream writes the first 2,000 documents of train.txt as
// text, Parquet (one file with several row groups, and three shards read
// through a glob), JSONL, and gzip- and zstd-compressed JSONL and text, and
// checks that every form gives the token stream of the text file.
func TestFormatsGiveSameStream(t *testing.T) {
	t.Parallel()
	raw, err := os.ReadFile(shareddata.Path(t, "data", "en", "train.txt"))
	if err != nil {
		t.Fatal(err)
	}
	docs := strings.Split(string(raw), "\n\n")[:2000]
	text := strings.Join(docs, "\n\n")
	rows := make([]textRow, len(docs))
	for i, d := range docs {
		rows[i] = textRow{ID: int64(i), Text: d}
	}
	dir := t.TempDir()
	put := fileWriter(t, dir)
	single := filepath.Join(dir, "single.parquet")
	writeParquet(t, single, rows, 300)
	shardDir := filepath.Join(dir, "shards")
	if err := os.Mkdir(shardDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Shards named so that lexical order is document order.
	for i, cut := range [][2]int{{0, 700}, {700, 1500}, {1500, 2000}} {
		writeParquet(t, filepath.Join(shardDir, []string{"train-00000-of-00003.parquet", "train-00001-of-00003.parquet", "train-00002-of-00003.parquet"}[i]), rows[cut[0]:cut[1]], 256)
	}
	lines := jsonLines(t, docs)
	sources := []struct {
		name string
		src  Source
	}{
		{"parquet", Source{Path: single}},
		{"parquet with format and column", Source{Path: single, Format: "parquet", Field: "text"}},
		{"parquet shards", Source{Path: filepath.Join(shardDir, "train-*.parquet")}},
		{"parquet named .txt", Source{Path: put("disguised.txt", mustRead(t, single))}},
		{"jsonl", Source{Path: put("c.jsonl", lines)}},
		{"jsonl.gz", Source{Path: put("c.jsonl.gz", gzipped(t, lines))}},
		{"jsonl.zst", Source{Path: put("c.jsonl.zst", zstded(t, lines))}},
		{"zstd jsonl with a format", Source{Path: put("c.bin", zstded(t, lines)), Format: "jsonl"}},
		{"text.gz", Source{Path: put("c.txt.gz", gzipped(t, []byte(text)))}},
		{"text.zst", Source{Path: put("c.txt.zst", zstded(t, []byte(text)))}},
	}
	tok, eos := referenceTokenizer(t)
	want, err := Tokenize(context.Background(), Source{Path: put("c.txt", []byte(text))}, tok, eos, StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if want.NumDocs() != len(docs) {
		t.Fatalf("the text file gives %d documents, want %d", want.NumDocs(), len(docs))
	}
	for _, s := range sources {
		t.Run(s.name, func(t *testing.T) {
			got, err := Tokenize(context.Background(), s.src, tok, eos, StreamOptions{Workers: 2})
			if err != nil {
				t.Fatal(err)
			}
			sameStream(t, want, got)
			read, err := ReadDocuments(s.src)
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(read, "\n\n") != text || len(read) != len(docs) {
				t.Errorf("ReadDocuments gives %d documents that differ from the text's %d", len(read), len(docs))
			}
		})
	}
}

// fileWriter returns a function that writes a file in dir and returns its
// path.
func fileWriter(t testing.TB, dir string) func(name string, b []byte) string {
	return func(name string, b []byte) string {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
}

func mustRead(t testing.TB, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestParquetCache checks that a glob of Parquet shards is cached like a
// file, and that changing one shard rebuilds the cache.
func TestParquetCache(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeParquet(t, filepath.Join(dir, "a-0.parquet"), []textRow{{Text: "one"}, {Text: "two"}}, 10)
	writeParquet(t, filepath.Join(dir, "a-1.parquet"), []textRow{{Text: "three"}}, 10)
	opts := StreamOptions{CacheDir: filepath.Join(dir, "cache"), TokenizerID: "bytes"}
	src := Source{Path: filepath.Join(dir, "a-*.parquet")}
	load := func() *Stream {
		s, err := Tokenize(context.Background(), src, bytes257, 256, opts)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	first := load()
	if first.Cached() || first.NumDocs() != 3 || first.Len() != len("onetwothree")+3 {
		t.Fatalf("first load: cached %v, %d documents, %d tokens", first.Cached(), first.NumDocs(), first.Len())
	}
	second := load()
	if !second.Cached() {
		t.Fatal("the second load did not use the cache")
	}
	sameStream(t, first, second)
	writeParquet(t, filepath.Join(dir, "a-1.parquet"), []textRow{{Text: "four"}}, 10)
	if third := load(); third.Cached() || third.Len() != len("onetwofour")+3 {
		t.Fatalf("after a shard changed: cached %v, %d tokens", third.Cached(), third.Len())
	}
}

// TestBinaryData checks that binary files, invalid UTF-8 and NUL bytes are
// errors naming the file and the offset, whatever the file is called
// (issue 20: a Parquet file read as text gave a perplexity; issue 22, item
// 10: the pipeline binary as text gave rc 0).
func TestBinaryData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	put := fileWriter(t, dir)
	pq := filepath.Join(dir, "c.parquet")
	writeParquet(t, pq, []textRow{{Text: "a"}, {Text: "b\x00c"}}, 10)
	pqBytes := mustRead(t, pq)
	type optional struct {
		Text *string `parquet:"text,optional"`
	}
	nulls := filepath.Join(dir, "nulls.parquet")
	s := "x"
	writeParquet(t, nulls, []optional{{&s}, {nil}}, 10)
	type ints struct {
		Body string `parquet:"body"`
		Text int64  `parquet:"text"`
	}
	intCol := filepath.Join(dir, "ints.parquet")
	writeParquet(t, intCol, []ints{{"a", 1}}, 10)
	// The test binary itself: an ELF file on Linux.
	self := put("self.txt", mustRead(t, os.Args[0]))
	tests := []struct {
		name string
		src  Source
		want []string
	}{
		{"test binary as text", Source{Path: self}, []string{"self.txt is an ELF executable", "not text, JSONL or Parquet"}},
		{"test binary as jsonl", Source{Path: self, Format: "jsonl"}, []string{"self.txt is an ELF executable"}},
		{"zip", Source{Path: put("a.txt", []byte("PK\x03\x04rest"))}, []string{"a.txt is a zip archive"}},
		{"invalid UTF-8", Source{Path: put("latin1.txt", []byte("caf\xe9 au lait"))}, []string{"latin1.txt: invalid UTF-8 at byte 3 (0xe9)", "UTF-8 text"}},
		{"truncated sequence", Source{Path: put("cut.txt", []byte("ab\xe2\x82"))}, []string{"cut.txt: invalid UTF-8 at byte 2 (0xe2)"}},
		{"NUL", Source{Path: put("nul.txt", []byte("abc\n\nd\x00e"))}, []string{"nul.txt: NUL byte at byte 6"}},
		{"invalid UTF-8 before a NUL", Source{Path: put("both.txt", []byte("\xff\x00"))}, []string{"both.txt: invalid UTF-8 at byte 0"}},
		{"invalid UTF-8 in JSONL", Source{Path: put("a.jsonl", []byte("{\"text\": \"ok\"}\n{\"text\": \"\xc3\"}"))}, []string{"a.jsonl: invalid UTF-8 at byte 25"}},
		{"escaped NUL in JSONL", Source{Path: put("b.jsonl", []byte("{\"text\": \"ok\"}\n{\"text\": \"a\\u0000\"}"))}, []string{"b.jsonl:2: field \"text\" holds a NUL character", "at byte 1"}},
		{"NUL in gzip", Source{Path: put("n.txt.gz", gzipped(t, []byte("ab\x00")))}, []string{"n.txt.gz: NUL byte at byte 2 of the decompressed data"}},
		{"binary in zstd", Source{Path: put("e.jsonl.zst", zstded(t, mustRead(t, os.Args[0])))}, []string{"e.jsonl.zst decompresses to an ELF executable"}},
		{"corrupt gzip", Source{Path: put("bad.gz", []byte("\x1f\x8b\x08\x00garbage"))}, []string{"bad.gz: corrupt gzip data"}},
		{"parquet as format text", Source{Path: pq, Format: "text"}, []string{"c.parquet is a Parquet file", "set data.format to parquet"}},
		{"text as format parquet", Source{Path: put("t.txt", []byte("hello")), Format: "parquet"}, []string{"t.txt is not a Parquet file"}},
		{"NUL in a parquet value", Source{Path: pq}, []string{"c.parquet: row 2: column \"text\" has NUL byte at byte 1"}},
		{"missing column", Source{Path: pq, Field: "body"}, []string{"c.parquet has no column \"body\" (it has id, text)", "data.column"}},
		{"int column", Source{Path: intCol}, []string{"ints.parquet: column \"text\" holds INT64 values, not strings"}},
		{"null value", Source{Path: nulls}, []string{"nulls.parquet: row 2: column \"text\" is null"}},
		{"truncated parquet", Source{Path: put("trunc.parquet", pqBytes[:len(pqBytes)/2])}, []string{"trunc.parquet: not a readable Parquet file"}},
		{"glob without match", Source{Path: filepath.Join(dir, "none-*.parquet")}, []string{"none-*.parquet matches no file"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Tokenize(context.Background(), tt.src, bytes257, 256, StreamOptions{})
			if err == nil {
				t.Fatal("no error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

// TestParquetCorruption flips each byte of a small Parquet file in turn: a
// flip must give an error or documents, never a panic (the library trusts
// the file's metadata; readParquet turns its panics into errors).
func TestParquetCorruption(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clean := filepath.Join(dir, "clean.parquet")
	writeParquet(t, clean, []textRow{{1, "alpha"}, {2, "beta"}, {3, "gamma"}}, 2)
	b := mustRead(t, clean)
	path := filepath.Join(dir, "flipped.parquet")
	failed := 0
	for i := range b {
		flipped := bytes.Clone(b)
		flipped[i] ^= 0xff
		if err := os.WriteFile(path, flipped, 0o644); err != nil {
			t.Fatal(err)
		}
		_, err := ReadDocuments(Source{Path: path})
		if err != nil {
			failed++
			if !strings.Contains(err.Error(), "flipped.parquet") {
				t.Fatalf("flipping byte %d: the error %q does not name the file", i, err)
			}
		}
	}
	t.Logf("%d of %d flips gave an error", failed, len(b))
	if failed == 0 {
		t.Error("no flip gave an error")
	}
}
