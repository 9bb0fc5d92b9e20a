package data

import (
	"context"
	"errors"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// TestTokenizeStopsOnCancel: Tokenize returns soon after its context is
// cancelled while it reads a source that never ends (/dev/zero) or never
// starts (a FIFO without a writer), with the context's error.
func TestTokenizeStopsOnCancel(t *testing.T) {
	fifo := filepath.Join(t.TempDir(), "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, path := range []string{"/dev/zero", fifo} {
		t.Run(filepath.Base(path), func(t *testing.T) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(300*time.Millisecond, cancel)
			start := time.Now()
			s, err := Tokenize(ctx, Source{Path: path}, bytes257, 256, StreamOptions{})
			if took := time.Since(start); !(took < 2*time.Second) {
				t.Errorf("Tokenize returned %v after the start, %v after the cancel; want under 1 s after it", took, took-300*time.Millisecond)
			}
			if s != nil || !errors.Is(err, context.Canceled) {
				t.Errorf("got %v, %v; want no stream and context.Canceled", s, err)
			}
		})
	}
}
