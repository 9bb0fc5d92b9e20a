package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/schollz/progressbar/v3"

	"mohawk/tokenizer"
)

// Source names a corpus, one file or a glob of shards, and how it splits
// into documents.
type Source struct {
	// Path of the file, or a glob such as data/train-*.parquet whose
	// matches are read in lexical order as one corpus.
	Path string
	// Format is "text", "jsonl" (one JSON object per line, one document per
	// object; blank lines are skipped) or "parquet" (one document per row);
	// empty detects it for each file. Whatever the format and the file
	// names, a file's first bytes decide how it is read: a Parquet file
	// (PAR1) is read as Parquet, a gzip or zstd file is decompressed first,
	// and other binary files are refused. Otherwise an empty format reads
	// *.jsonl and *.ndjson files (also compressed, *.jsonl.gz, *.jsonl.zst)
	// as JSONL and everything else as text. Text and JSONL must be UTF-8
	// without NUL bytes.
	Format string
	// Field is the key of each JSONL object, or the Parquet column (a dotted
	// path for a nested one), that holds the document's text; default
	// "text". Ignored for text files.
	Field string
	// Separator splits a text file into documents; default "\n\n". Every
	// piece between separators is a document, empty ones included, exactly
	// as Python's str.split(separator) cuts it. Ignored for JSONL and
	// Parquet files.
	Separator string
}

// Encoder turns text into token ids; *tokenizer.Tokenizer is one. Encode
// must be safe for concurrent use, and every id it returns must lie in
// [0, VocabSize()).
type Encoder interface {
	Encode(text string) []int64
	VocabSize() int
}

// StreamOptions tune Tokenize; the zero value encodes with GOMAXPROCS
// workers, without a cache and without progress output.
type StreamOptions struct {
	// CacheDir, when set, is the directory of token cache files (created if
	// missing). A cache file is keyed by the SHA-256 of the source file's
	// bytes, the format, field and separator, TokenizerID, the vocabulary
	// size and the end-of-text id.
	CacheDir string
	// TokenizerID identifies the tokenizer in cache keys, for example the
	// SHA-256 of its tokenizer.json. Required with CacheDir.
	TokenizerID string
	// Progress, when set, receives a progress bar of the bytes tokenized and
	// a line when an unusable cache file is rebuilt.
	Progress io.Writer
	// Workers is the number of goroutines encoding documents; 0 means
	// GOMAXPROCS. The result does not depend on it.
	Workers int
}

// normalized returns src with defaults filled in and the settings that do
// not apply to its format cleared, so that equal corpora have equal keys.
func (src Source) normalized() (Source, error) {
	if src.Path == "" {
		return src, errors.New("the source has no path; set data.path to a text, JSONL or Parquet file")
	}
	switch src.Format {
	case "", "text", "jsonl", "parquet":
	default:
		return src, fmt.Errorf("%s: unknown format %q; set data.format to \"text\", \"jsonl\" or \"parquet\", or leave it empty", src.Path, src.Format)
	}
	if src.Format == "text" {
		src.Field = ""
	} else if src.Field == "" {
		src.Field = "text"
	}
	if src.Format == "jsonl" || src.Format == "parquet" {
		src.Separator = ""
	} else if src.Separator == "" {
		src.Separator = "\n\n"
	}
	return src, nil
}

// shards returns the files of src (normalized), with their formats: the
// file at src.Path, or the matches of the glob in lexical order.
func (src Source) shards(ctx context.Context) ([]shard, error) {
	paths := []string{src.Path}
	if strings.ContainsAny(src.Path, "*?[") {
		var err error
		if paths, err = filepath.Glob(src.Path); err != nil {
			return nil, fmt.Errorf("%s: bad glob pattern: %v; check data.path", src.Path, err)
		}
		if len(paths) == 0 {
			return nil, fmt.Errorf("%s matches no file; check data.path", src.Path)
		}
	}
	out := make([]shard, len(paths))
	for i, p := range paths {
		sh, err := openShard(ctx, p, src.Format)
		if err != nil {
			return nil, err
		}
		out[i] = sh
	}
	return out, nil
}

// document is one document of a source file.
type document struct {
	text string
	at   int // byte offset in the (decompressed) file
	line int // line number for JSONL, 0 otherwise
	row  int // row number for Parquet (from 1), 0 otherwise
	size int // bytes of the file it accounts for, for progress
}

// where names the document in errors.
func (d document) where(file string, index int) string {
	switch {
	case d.line > 0:
		return fmt.Sprintf("%s:%d", file, d.line)
	case d.row > 0:
		return fmt.Sprintf("%s: row %d", file, d.row)
	}
	return fmt.Sprintf("%s: document %d at byte %d", file, index, d.at)
}

// documents reads the documents of one shard of src (normalized).
func (src Source) documents(ctx context.Context, sh shard) ([]document, error) {
	if sh.format == "parquet" {
		return sh.readParquet(ctx, src.Field)
	}
	raw, err := sh.readText(ctx)
	if err != nil {
		return nil, err
	}
	return src.split(sh, raw)
}

// split cuts the checked bytes of a text or JSONL shard into documents.
func (src Source) split(sh shard, raw []byte) ([]document, error) {
	// The documents of a text file point into raw, which nothing modifies.
	text := unsafe.String(unsafe.SliceData(raw), len(raw))
	if sh.format == "text" {
		var docs []document
		at := 0
		for {
			i := strings.Index(text[at:], src.Separator)
			if i < 0 {
				return append(docs, document{text: text[at:], at: at, size: len(text) - at}), nil
			}
			docs = append(docs, document{text: text[at : at+i], at: at, size: i + len(src.Separator)})
			at += i + len(src.Separator)
		}
	}
	var docs []document
	hint := "set data.field to the key that holds the text"
	err := eachObject(sh.path, raw, func(o object) error {
		s, err := o.str(src.Field, hint)
		if err != nil {
			return err
		}
		if i := strings.IndexByte(s, 0); i >= 0 {
			return o.problem(src.Field, "", "holds a NUL character (\\u0000) at byte %d of its text; the text must not contain NUL", i)
		}
		if n := len(docs); n > 0 {
			docs[n-1].size = o.at - docs[n-1].at
		}
		docs = append(docs, document{text: s, at: o.at, line: o.line, size: len(raw) - o.at})
		return nil
	})
	return docs, err
}

// ReadDocuments returns the documents of a source, in file order.
func ReadDocuments(src Source) ([]string, error) {
	src, err := src.normalized()
	if err != nil {
		return nil, err
	}
	shards, err := src.shards(context.Background())
	if err != nil {
		return nil, err
	}
	var out []string
	for _, sh := range shards {
		docs, err := src.documents(context.Background(), sh)
		if err != nil {
			return nil, err
		}
		for _, d := range docs {
			out = append(out, d.text)
		}
	}
	return out, nil
}

// Tokenize reads src, encodes every document with tok, appends eos after
// each and concatenates them in file order. The shards of a glob are read
// and encoded one at a time, so that only one shard's text is in memory;
// the documents of a shard are encoded in parallel, and the stream does not
// depend on the number of workers. With opts.CacheDir set, a valid cache
// file for the same inputs is read instead, and a missing or unusable one
// is (re)written.
func Tokenize(ctx context.Context, src Source, tok Encoder, eos int64, opts StreamOptions) (*Stream, error) {
	src, err := src.normalized()
	if err != nil {
		return nil, err
	}
	vocab := tok.VocabSize()
	if vocab <= 0 || int64(vocab) > 1<<32 {
		return nil, fmt.Errorf("tokenize %s: the tokenizer reports a vocabulary of %d ids; it must be in [1, 2^32]", src.Path, vocab)
	}
	if eos < 0 || eos >= int64(vocab) {
		return nil, fmt.Errorf("tokenize %s: end-of-text id %d is outside the vocabulary of %d ids; pass the id of the tokenizer's <|endoftext|>", src.Path, eos, vocab)
	}
	shards, err := src.shards(ctx)
	if err != nil {
		return nil, err
	}
	var cachePath string
	var key [32]byte
	if opts.CacheDir != "" {
		if opts.TokenizerID == "" {
			return nil, fmt.Errorf("tokenize %s: a cache directory is set but the tokenizer identity is empty; set StreamOptions.TokenizerID (e.g. the SHA-256 of tokenizer.json)", src.Path)
		}
		if key, err = cacheKey(ctx, shards, src, opts.TokenizerID, vocab, eos); err != nil {
			return nil, err
		}
		cachePath = cacheFile(opts.CacheDir, key)
		s, err := readCache(cachePath, key, vocab, eos)
		switch {
		case err == nil:
			s.name, s.cached = src.Path, true
			return s, nil
		case errors.Is(err, fs.ErrNotExist):
		case opts.Progress != nil:
			fmt.Fprintf(opts.Progress, "token cache %s is unusable (%v); rebuilding it\n", cachePath, err)
		}
	}
	s := &Stream{name: src.Path, wide: wideVocab(vocab), eos: eos, vocab: vocab, docs: []int{0}}
	for _, sh := range shards {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		docs, err := src.documents(ctx, sh)
		if err != nil {
			return nil, err
		}
		enc := encoder{file: sh.path, docs: docs, tok: tok, eos: eos, vocab: vocab, workers: opts.Workers, progress: opts.Progress}
		var offsets []int
		if s.wide {
			s.u32, offsets, err = encodeAll(ctx, enc, s.u32)
		} else {
			s.u16, offsets, err = encodeAll(ctx, enc, s.u16)
		}
		if err != nil {
			return nil, err
		}
		s.docs = append(s.docs, offsets...)
	}
	if s.NumDocs() == 0 {
		return nil, fmt.Errorf("%s has no documents; check data.path and data.format", src.Path)
	}
	if cachePath != "" {
		if err := writeCache(cachePath, key, s); err != nil {
			return nil, fmt.Errorf("%w; point the cache directory at a writable place or leave it empty", err)
		}
	}
	return s, nil
}

// encoder holds what encodeAll needs.
type encoder struct {
	file     string
	docs     []document
	tok      Encoder
	eos      int64
	vocab    int
	workers  int
	progress io.Writer
}

// chunk is a run of documents [lo, hi) encoded by one worker at a time.
type chunk struct{ lo, hi, bytes int }

// chunks cuts the documents into runs of roughly equal bytes, enough of them
// to keep every worker busy and few enough to keep overhead low.
func (e encoder) chunks(workers int) []chunk {
	total := 0
	for _, d := range e.docs {
		total += d.size
	}
	target := min(max(total/(workers*16), 16<<10), 1<<20)
	var out []chunk
	c := chunk{}
	for i, d := range e.docs {
		c.bytes += d.size
		if c.bytes >= target || i == len(e.docs)-1 {
			c.hi = i + 1
			out = append(out, c)
			c = chunk{lo: i + 1}
		}
	}
	return out
}

// encodeAll encodes the documents with e.workers goroutines, appends their
// tokens to dst and returns it with the end offset of each document in it.
// The first error in document order wins, whatever the scheduling.
func encodeAll[T token](ctx context.Context, e encoder, dst []T) ([]T, []int, error) {
	workers := e.workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	chunks := e.chunks(workers)
	workers = min(workers, len(chunks))
	var bar *progressbar.ProgressBar
	if e.progress != nil {
		total := 0
		for _, c := range chunks {
			total += c.bytes
		}
		if total > 0 {
			bar = progressbar.NewOptions64(int64(total),
				progressbar.OptionSetWriter(e.progress),
				progressbar.OptionSetDescription("tokenize "+filepath.Base(e.file)),
				progressbar.OptionShowBytes(true),
				progressbar.OptionSetWidth(30),
				progressbar.OptionThrottle(200*time.Millisecond),
				progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.progress) }),
			)
		}
	}

	toks := make([][]T, len(chunks))
	lens := make([][]int, len(chunks))
	errs := make([]error, len(chunks))
	var next atomic.Int64
	var failed atomic.Bool
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			e := e
			e.tok = forkEncoder(e.tok)
			for !failed.Load() {
				i := int(next.Add(1) - 1)
				if i >= len(chunks) {
					return
				}
				if err := ctx.Err(); err != nil {
					errs[i] = err
				} else {
					toks[i], lens[i], errs[i] = encodeChunk[T](e, chunks[i])
				}
				if errs[i] != nil {
					failed.Store(true)
					return
				}
				if bar != nil {
					bar.Add64(int64(chunks[i].bytes))
				}
			}
		})
	}
	wg.Wait()
	// Chunks are claimed in order and finished once claimed, so every chunk
	// before a failed one was encoded: the first error is the earliest.
	for _, err := range errs {
		if err != nil {
			if bar != nil {
				bar.Exit()
			}
			return nil, nil, err
		}
	}
	if bar != nil {
		bar.Finish()
	}
	n := 0
	for _, t := range toks {
		n += len(t)
	}
	all := slices.Grow(dst, n)
	offsets := make([]int, 0, len(e.docs))
	end := len(dst)
	for i := range chunks {
		all = append(all, toks[i]...)
		for _, l := range lens[i] {
			end += l
			offsets = append(offsets, end)
		}
	}
	return all, offsets, nil
}

// forkEncoder gives a worker its own copy of a tokenizer.Tokenizer, whose
// piece cache would otherwise be shared (and contended) by every worker.
func forkEncoder(tok Encoder) Encoder {
	if t, ok := tok.(*tokenizer.Tokenizer); ok {
		return t.Fork()
	}
	return tok
}

// appendEncoder is an Encoder that also appends ids to a slice it is given,
// as *tokenizer.Tokenizer does: encodeChunk then reuses one slice for all
// the documents of a chunk.
type appendEncoder interface {
	AppendEncode(ids []int64, text string) []int64
}

// encodeChunk encodes the documents of c and returns their tokens, each
// document followed by eos, and each document's token count.
func encodeChunk[T token](e encoder, c chunk) ([]T, []int, error) {
	out := make([]T, 0, c.bytes/4+c.hi-c.lo)
	lens := make([]int, 0, c.hi-c.lo)
	appender, _ := e.tok.(appendEncoder)
	var buf []int64
	for i := c.lo; i < c.hi; i++ {
		var ids []int64
		if appender != nil {
			buf = appender.AppendEncode(buf[:0], e.docs[i].text)
			ids = buf
		} else {
			ids = e.tok.Encode(e.docs[i].text)
		}
		for _, id := range ids {
			if id < 0 || id >= int64(e.vocab) {
				return nil, nil, fmt.Errorf("%s: the tokenizer returned id %d, outside its vocabulary of %d ids; its VocabSize must cover every id it produces",
					e.docs[i].where(e.file, i), id, e.vocab)
			}
			out = append(out, T(id))
		}
		out = append(out, T(e.eos))
		lens = append(lens, len(ids)+1)
	}
	return out, lens, nil
}
