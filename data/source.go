package data

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
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
		docs, at := cutDocs(nil, text, src.Separator, 0)
		return append(docs, document{text: text[at:], at: at, size: len(text) - at}), nil
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
	workers := opts.Workers
	if workers <= 0 {
		workers = runtime.GOMAXPROCS(0)
	}
	for _, sh := range shards {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		feed, total, err := src.feeder(ctx, sh, workers)
		if err != nil {
			return nil, err
		}
		enc := encoder{file: sh.path, tok: tok, eos: eos, vocab: vocab, workers: workers, progress: opts.Progress}
		var offsets []int
		if s.wide {
			s.u32, offsets, err = encodeAll(ctx, enc, s.u32, total, feed)
		} else {
			s.u16, offsets, err = encodeAll(ctx, enc, s.u16, total, feed)
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

// feeder returns the feed of the documents of shard sh and the bytes they
// account for, for progress (-1 when unknown). A text file stored as it is
// is read by streamText while its first documents are encoded; other files
// are read and checked whole first, and their documents cut into chunks.
func (src Source) feeder(ctx context.Context, sh shard, workers int) (feed, int64, error) {
	if src.streams(sh) {
		total := int64(-1)
		if fi, err := os.Stat(sh.path); err == nil && fi.Mode().IsRegular() {
			total = fi.Size()
		}
		return func(emit func([]document, int) bool) error {
			return src.streamText(ctx, sh, streamBlock, emit)
		}, total, nil
	}
	docs, err := src.documents(ctx, sh)
	if err != nil {
		return nil, 0, err
	}
	cs := chunks(docs, workers)
	total := 0
	for _, c := range cs {
		total += c.bytes
	}
	return func(emit func([]document, int) bool) error {
		for _, c := range cs {
			if !emit(docs[c.lo:c.hi], c.lo) {
				return ctx.Err()
			}
		}
		return nil
	}, int64(total), nil
}

// encoder holds what encodeAll needs.
type encoder struct {
	file     string
	tok      Encoder
	eos      int64
	vocab    int
	workers  int
	progress io.Writer
}

// chunk is a run of documents [lo, hi) encoded by one worker at a time.
type chunk struct{ lo, hi, bytes int }

// chunks cuts docs into runs of roughly equal bytes, enough of them to keep
// every worker busy and few enough to keep overhead low.
func chunks(docs []document, workers int) []chunk {
	total := 0
	for _, d := range docs {
		total += d.size
	}
	target := min(max(total/(workers*16), 16<<10), 1<<20)
	var out []chunk
	c := chunk{}
	for i, d := range docs {
		c.bytes += d.size
		if c.bytes >= target || i == len(docs)-1 {
			c.hi = i + 1
			out = append(out, c)
			c = chunk{lo: i + 1}
		}
	}
	return out
}

// batch is a run of documents that feed emitted, and what encoding it gave.
type batch[T token] struct {
	seq   int64 // position among the batches
	docs  []document
	first int // index of docs[0] in the shard
	toks  []T
	lens  []int
	err   error
}

// encodeAll encodes the documents of feed with e.workers goroutines while
// feed reads on in a goroutine of its own, appends their tokens to dst and
// returns it with the end offset of each document in it. Whatever the
// scheduling, feed's error (the file's: a read or text error) wins, then
// the error of the earliest document; after an encoding error the file is
// still read to its end, unencoded, to find its own errors.
func encodeAll[T token](ctx context.Context, e encoder, dst []T, total int64, feed feed) ([]T, []int, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	bar := e.bar(total)
	var batches []*batch[T] // appended by feed's goroutine, read once it ended
	queue := make(chan *batch[T], e.workers)
	fed := make(chan error, 1)
	go func() {
		err := feed(func(docs []document, first int) bool {
			b := &batch[T]{seq: int64(len(batches)), docs: docs, first: first}
			select {
			case queue <- b:
				batches = append(batches, b)
				return true
			case <-ctx.Done():
				return false
			}
		})
		close(queue)
		fed <- err
	}()
	var failed atomic.Int64 // the first failed batch's seq, as far as known
	failed.Store(math.MaxInt64)
	var wg sync.WaitGroup
	for range e.workers {
		wg.Go(func() {
			e := e
			e.tok = forkEncoder(e.tok)
			for {
				var b *batch[T]
				select {
				case <-ctx.Done():
					return
				case b = <-queue:
				}
				if b == nil {
					return
				}
				if b.seq > failed.Load() {
					continue // a batch before it failed: only drain the queue
				}
				b.toks, b.lens, b.err = encodeChunk[T](e, b.docs, b.first)
				b.docs = nil // let the block of text go: a shard is not held whole
				if b.err != nil {
					for f := failed.Load(); b.seq < f && !failed.CompareAndSwap(f, b.seq); f = failed.Load() {
					}
				} else if bar != nil {
					for _, d := range b.docs {
						bar.Add64(int64(d.size))
					}
				}
			}
		})
	}
	wg.Wait()
	err := ctx.Err()
	if err != nil {
		err = fmt.Errorf("tokenize %s: %w", e.file, err)
	} else if err = <-fed; err == nil {
		// Batches are encoded unless one before them failed, so the first
		// error met in order is the earliest document's.
		for _, b := range batches {
			if err = b.err; err != nil {
				break
			}
		}
	}
	if err != nil {
		if bar != nil {
			bar.Exit()
		}
		return nil, nil, err
	}
	if bar != nil {
		bar.Finish()
	}
	n := 0
	for _, b := range batches {
		n += len(b.toks)
	}
	all := slices.Grow(dst, n)
	var offsets []int
	end := len(dst)
	for _, b := range batches {
		all = append(all, b.toks...)
		for _, l := range b.lens {
			end += l
			offsets = append(offsets, end)
		}
	}
	return all, offsets, nil
}

// bar is the progress bar of encoding total bytes (-1 when unknown), or nil
// without a progress writer or bytes.
func (e encoder) bar(total int64) *progressbar.ProgressBar {
	if e.progress == nil || total == 0 {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(e.progress),
		progressbar.OptionSetDescription("tokenize "+filepath.Base(e.file)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(e.progress) }),
	)
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
// the documents of a batch.
type appendEncoder interface {
	AppendEncode(ids []int64, text string) []int64
}

// encodeChunk encodes docs, document first of the shard and the ones after
// it, and returns their tokens, each document followed by eos, and each
// document's token count.
func encodeChunk[T token](e encoder, docs []document, first int) ([]T, []int, error) {
	size := 0
	for _, d := range docs {
		size += d.size
	}
	out := make([]T, 0, size/4+len(docs))
	lens := make([]int, 0, len(docs))
	appender, _ := e.tok.(appendEncoder)
	var buf []int64
	for i, d := range docs {
		var ids []int64
		if appender != nil {
			buf = appender.AppendEncode(buf[:0], d.text)
			ids = buf
		} else {
			ids = e.tok.Encode(d.text)
		}
		for _, id := range ids {
			if id < 0 || id >= int64(e.vocab) {
				return nil, nil, fmt.Errorf("%s: the tokenizer returned id %d, outside its vocabulary of %d ids; its VocabSize must cover every id it produces",
					d.where(e.file, first+i), id, e.vocab)
			}
			out = append(out, T(id))
		}
		out = append(out, T(e.eos))
		lens = append(lens, len(ids)+1)
	}
	return out, lens, nil
}
