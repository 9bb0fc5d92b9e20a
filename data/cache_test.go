package data

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// sampleCache returns a small valid cache file, its key and its stream.
func sampleCache(t testing.TB, wide bool) ([]byte, [32]byte, *Stream) {
	t.Helper()
	enc, eos := bytes257, int64(256)
	if wide {
		enc, eos = byteEncoder{vocab: 70000, offset: 66000}, 69999
	}
	src := Source{Path: writeFile(t, "c.txt", "ab\n\ncd e\n\n\n\nf")}
	s, err := Tokenize(context.Background(), src, enc, eos, StreamOptions{})
	if err != nil {
		t.Fatal(err)
	}
	key := keyOf(t, src, "bytes", enc.vocab, eos)
	return encodeCache(key, s), key, s
}

// keyOf returns the cache key of src.
func keyOf(t testing.TB, src Source, tokenizerID string, vocab int, eos int64) [32]byte {
	t.Helper()
	n, err := src.normalized()
	if err != nil {
		t.Fatal(err)
	}
	shards, err := n.shards(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	key, err := cacheKey(context.Background(), shards, n, tokenizerID, vocab, eos)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func TestCacheRoundTrip(t *testing.T) {
	t.Parallel()
	for _, wide := range []bool{false, true} {
		b, key, s := sampleCache(t, wide)
		got, err := decodeCache(b, key, s.VocabSize(), s.EOS())
		if err != nil {
			t.Fatal(err)
		}
		sameStream(t, s, got)
	}
}

// TestCacheCorruption checks that every single-bit flip, every truncation
// and any appended byte makes the parser reject the file, as do other
// keys, vocabularies and end-of-text ids.
func TestCacheCorruption(t *testing.T) {
	t.Parallel()
	for _, wide := range []bool{false, true} {
		b, key, s := sampleCache(t, wide)
		for i := range b {
			for bit := range 8 {
				c := bytes.Clone(b)
				c[i] ^= 1 << bit
				if _, err := decodeCache(c, key, s.VocabSize(), s.EOS()); err == nil {
					t.Fatalf("wide %v: flipping bit %d of byte %d went unnoticed", wide, bit, i)
				}
			}
		}
		for n := range len(b) {
			if _, err := decodeCache(b[:n], key, s.VocabSize(), s.EOS()); err == nil {
				t.Fatalf("wide %v: truncation to %d of %d bytes went unnoticed", wide, n, len(b))
			}
		}
		if _, err := decodeCache(append(bytes.Clone(b), 0), key, s.VocabSize(), s.EOS()); err == nil {
			t.Fatal("an appended byte went unnoticed")
		}
		other := key
		other[0] ^= 1
		for _, c := range []struct {
			key   [32]byte
			vocab int
			eos   int64
			want  string
		}{
			{other, s.VocabSize(), s.EOS(), "key mismatch"},
			{key, s.VocabSize(), s.EOS() - 1, "does not end with the end-of-text id"},
			{key, map[bool]int{false: 70000, true: 300}[wide], s.EOS(), "bytes per token"},
		} {
			if _, err := decodeCache(b, c.key, c.vocab, c.eos); err == nil || !strings.Contains(err.Error(), c.want) {
				t.Errorf("wide %v: error %v, want %q", wide, err, c.want)
			}
		}
	}
}

// TestTokenizeCache checks the cache end to end: a first call writes the
// file, a second reads it, and a corrupt or truncated file is reported and
// rebuilt, never used.
func TestTokenizeCache(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "cache", "sub")
	src := Source{Path: writeFile(t, "corpus.txt", strings.Repeat("hello world\n\nbye\n\n", 500))}
	opts := StreamOptions{CacheDir: dir, TokenizerID: "bytes"}
	fresh, err := Tokenize(context.Background(), src, bytes257, 256, opts)
	if err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "tokens-*.bin"))
	if fresh.Cached() || len(files) != 1 {
		t.Fatalf("first call: Cached %v, cache files %v", fresh.Cached(), files)
	}
	file := files[0]
	valid, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	load := func(step string) (*Stream, string) {
		var log bytes.Buffer
		o := opts
		o.Progress = &log
		s, err := Tokenize(context.Background(), src, bytes257, 256, o)
		if err != nil {
			t.Fatalf("%s: %v", step, err)
		}
		sameStream(t, fresh, s)
		if s.Name() != src.Path {
			t.Fatalf("%s: name %q", step, s.Name())
		}
		return s, log.String()
	}
	if s, _ := load("second call"); !s.Cached() {
		t.Fatal("second call did not use the cache")
	}
	for _, corrupt := range []struct {
		name string
		data []byte
	}{
		{"flipped token", func() []byte { c := bytes.Clone(valid); c[len(c)-3] ^= 0x01; return c }()},
		{"truncated", valid[:len(valid)-2]},
		{"empty", nil},
	} {
		if err := os.WriteFile(file, corrupt.data, 0o644); err != nil {
			t.Fatal(err)
		}
		s, log := load(corrupt.name)
		if s.Cached() || !strings.Contains(log, "is unusable") || !strings.Contains(log, "rebuilding") {
			t.Fatalf("%s: Cached %v, log %q", corrupt.name, s.Cached(), log)
		}
		if b, _ := os.ReadFile(file); !bytes.Equal(b, valid) {
			t.Fatalf("%s: the cache file was not rebuilt", corrupt.name)
		}
		if s, _ := load(corrupt.name + ", after rebuild"); !s.Cached() {
			t.Fatalf("%s: the rebuilt cache is not used", corrupt.name)
		}
	}
}

// TestCacheKey checks that the key changes with every input it covers and
// not with the settings that do not apply to the format.
func TestCacheKey(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	x := file("x", "a\n\nb")
	file("x2", "c")
	base := keyOf(t, Source{Path: x}, "tok", 257, 256)
	differ := []struct {
		name string
		key  [32]byte
	}{
		{"file bytes", keyOf(t, Source{Path: file("c", "a\n\nc")}, "tok", 257, 256)},
		{"separator", keyOf(t, Source{Path: x, Separator: "\n"}, "tok", 257, 256)},
		{"format", keyOf(t, Source{Path: x, Format: "jsonl"}, "tok", 257, 256)},
		{"format from the name", keyOf(t, Source{Path: file("x.jsonl", "a\n\nb")}, "tok", 257, 256)},
		{"another shard", keyOf(t, Source{Path: filepath.Join(dir, "x*")}, "tok", 257, 256)},
		{"tokenizer", keyOf(t, Source{Path: x}, "tok2", 257, 256)},
		{"vocabulary", keyOf(t, Source{Path: x}, "tok", 258, 256)},
		{"eos", keyOf(t, Source{Path: x}, "tok", 257, 255)},
	}
	for _, d := range differ {
		if d.key == base {
			t.Errorf("changing the %s keeps the key", d.name)
		}
	}
	same := keyOf(t, Source{Path: file("y", "a\n\nb"), Format: "text", Field: "body", Separator: "\n\n"}, "tok", 257, 256)
	if same != base {
		t.Error("the path, the default separator or a field for a text file changed the key")
	}
	if keyOf(t, Source{Path: x, Format: "jsonl"}, "tok", 257, 256) != keyOf(t, Source{Path: x, Format: "jsonl", Field: "text", Separator: "|"}, "tok", 257, 256) {
		t.Error("the default field or a separator for a JSONL file changed the key")
	}
}

// FuzzCacheFile checks that the parser never panics and accepts nothing but
// the exact bytes that were written.
func FuzzCacheFile(f *testing.F) {
	valid, key, s := sampleCache(f, false)
	f.Add(valid)
	f.Add(valid[:cacheHeader])
	f.Add([]byte(cacheMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := decodeCache(b, key, s.VocabSize(), s.EOS())
		if err == nil {
			if !bytes.Equal(b, valid) {
				t.Fatalf("accepted %d bytes that differ from the valid file", len(b))
			}
			sameStream(t, s, got)
		}
	})
}
