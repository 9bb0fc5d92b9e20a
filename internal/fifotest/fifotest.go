package fifotest

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Idle makes a FIFO in dir that no one ever writes to: opening it for
// reading blocks.
func Idle(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "idle")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Endless makes a FIFO in dir that feeds text to every reader that opens
// it (a reader may open a file twice: for its first bytes, then to read
// it), for as long as the process runs.
func Endless(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "endless")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	go feed(p)
	return p
}

func feed(path string) {
	line := []byte(strings.Repeat("words and more words ", 50) + "\n")
	for {
		w, err := os.OpenFile(path, os.O_WRONLY, 0)
		if err != nil {
			return
		}
		for {
			if _, err := w.Write(line); err != nil {
				break // this reader is gone
			}
		}
		w.Close()
	}
}
