package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"unicode/utf8"
	"unsafe"
)

// streamBlock is how many bytes streamText reads at a time.
const streamBlock = 256 << 10

// feed passes the documents of one shard, in file order, to emit: each call
// gets the next run of documents and the index of the first in the shard.
// emit returns false when the documents are no longer wanted (the context
// is done); feed then stops and returns the context's error.
type feed func(emit func(docs []document, first int) bool) error

// streams reports whether the documents of sh are read by streamText, block
// by block while the first ones are encoded, rather than read whole first:
// a text file stored as it is, with a separator that is valid UTF-8 (a
// block then ends between whole characters, so the text check of each block
// finds what one check of the whole file would).
func (src Source) streams(sh shard) bool {
	return sh.format == "text" && sh.codec == "" && utf8.ValidString(src.Separator)
}

// streamText reads the text file of sh block bytes at a time (more while
// one document outgrows a block) and passes to emit each block's complete
// documents as soon as they are read and checked. It cuts the file into
// the documents that split cuts, with the same offsets, and fails with the
// error that readText would give, at the same byte; like readText it stops
// reading after a block with a NUL byte, so an endless source of zeros
// costs one block of memory. Each block is a fresh array that nothing
// writes once read: the documents' text points into it.
func (src Source) streamText(ctx context.Context, sh shard, block int, emit func(docs []document, first int) bool) error {
	f, err := os.Open(sh.path)
	if err != nil {
		return fmt.Errorf("%w; check data.path", err)
	}
	defer f.Close()
	var rest []byte // bytes read after the last emitted document; rest[0] is byte base of the file
	base, first := 0, 0
	for {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("read %s: %w", sh.path, err)
		}
		buf := make([]byte, len(rest)+max(block, len(rest)))
		copy(buf, rest)
		n, err := io.ReadFull(f, buf[len(rest):])
		end := errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
		if err != nil && !end {
			return fmt.Errorf("%w; check data.path", err)
		}
		end = end || bytes.IndexByte(buf[len(rest):len(rest)+n], 0) >= 0
		buf = buf[:len(rest)+n]
		text := unsafe.String(unsafe.SliceData(buf), len(buf))
		docs, at := cutDocs(nil, text, src.Separator, base)
		if end {
			docs = append(docs, document{text: text[at:], at: base + at, size: len(text) - at})
			at = len(text)
		}
		if err := checkText(buf[:at], base); err != nil {
			return sh.badText(err, "")
		}
		if len(docs) > 0 && !emit(docs, first) {
			return fmt.Errorf("read %s: %w", sh.path, ctx.Err())
		}
		if end {
			return nil
		}
		first += len(docs)
		rest, base = buf[at:], base+at
	}
}

// cutDocs appends to docs the documents of text that end with sep, cut from
// the start as strings.Split cuts, text[0] being byte base of the file, and
// returns them with the offset in text of what follows the last separator.
func cutDocs(docs []document, text, sep string, base int) ([]document, int) {
	at := 0
	for {
		i := strings.Index(text[at:], sep)
		if i < 0 {
			return docs, at
		}
		docs = append(docs, document{text: text[at : at+i], at: base + at, size: i + len(sep)})
		at += i + len(sep)
	}
}
