package data

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
)

// readChunk is how much readFile reads between looks at its context.
const readChunk = 1 << 20

// readFile reads the whole file at path like os.ReadFile, but gives up as
// soon as ctx is done: it reads in 1 MiB pieces and checks ctx between them
// (an endless source such as /dev/zero stops growing), and it waits for the
// read in a goroutine, so that a read blocked in the kernel (a FIFO without a
// writer) does not hold the caller; that goroutine stays blocked until the
// FIFO gets a writer or the process exits.
//
// With stopAtNUL set (a file that must be text as it is stored), reading
// stops after the first piece holding a NUL byte: what was read already
// fails the text check, at that byte's offset, and an endless source of
// zeros costs one piece of memory.
func readFile(ctx context.Context, path string, stopAtNUL bool) ([]byte, error) {
	return abandonable(ctx, path, func() ([]byte, error) { return readChunks(ctx, path, stopAtNUL) })
}

// abandonable runs read, which reads the file at path, in a goroutine and
// returns its result, or ctx's error as soon as ctx is done: a read (or an
// open) blocked in the kernel, as on a FIFO without a writer, does not hold
// the caller; the goroutine stays blocked until the FIFO gets a writer or
// the process exits.
func abandonable(ctx context.Context, path string, read func() ([]byte, error)) ([]byte, error) {
	type result struct {
		b   []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := read()
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		return r.b, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("read %s: %w", path, ctx.Err())
	}
}

// readChunks reads path in readChunk pieces, checking ctx between them
// (and for a NUL byte, with stopAtNUL).
func readChunks(ctx context.Context, path string, stopAtNUL bool) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var buf bytes.Buffer
	if fi, err := f.Stat(); err == nil && fi.Mode().IsRegular() {
		buf.Grow(int(fi.Size()) + 1)
	}
	for {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("read %s: %w", path, err)
		}
		start := buf.Len()
		_, err := io.CopyN(&buf, f, readChunk)
		if errors.Is(err, io.EOF) || (stopAtNUL && bytes.IndexByte(buf.Bytes()[start:], 0) >= 0) {
			return buf.Bytes(), nil
		}
		if err != nil {
			return nil, err
		}
	}
}
