package data

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mohawk/internal/fifotest"
)

// TestTokenizeStopsOnCancel: Tokenize returns soon after its context is
// cancelled while it reads a source that never starts (a FIFO without a
// writer, blocking open(2)) or never ends (a FIFO whose writer keeps
// writing text), with the context's error.
func TestTokenizeStopsOnCancel(t *testing.T) {
	dir := t.TempDir()
	idle, endless := fifotest.Idle(t, dir), fifotest.Endless(t, dir)
	for _, path := range []string{idle, endless} {
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

// TestTokenizeRefusesZeros: /dev/zero as text data is refused at its first
// byte after one piece is read, instead of being read until memory runs out.
func TestTokenizeRefusesZeros(t *testing.T) {
	start := time.Now()
	_, err := Tokenize(context.Background(), Source{Path: "/dev/zero"}, bytes257, 256, StreamOptions{})
	if err == nil || !strings.Contains(err.Error(), "NUL byte at byte 0") {
		t.Fatalf("got %v, want the NUL byte at byte 0 named", err)
	}
	if took := time.Since(start); !(took < 5*time.Second) {
		t.Errorf("took %v", took)
	}
}
