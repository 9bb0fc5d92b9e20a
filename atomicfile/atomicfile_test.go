package atomicfile

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"mohawk/internal/diskfault"
)

// TestWriteFaults: whatever way the disk fails while a file is replaced,
// Write returns the error naming the file, the previous file keeps its
// bytes and no temporary file is left; once the fault is gone the same
// write succeeds.
func TestWriteFaults(t *testing.T) {
	data := []byte(strings.Repeat("new data ", 1000))
	for _, c := range []struct {
		name string
		f    diskfault.Fault
		want error
	}{
		{"disk full at once", diskfault.Fault{Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"disk full midway", diskfault.Fault{After: 4096, Err: syscall.ENOSPC}, syscall.ENOSPC},
		{"I/O error", diskfault.Fault{After: 100, Err: syscall.EIO}, syscall.EIO},
		{"short write", diskfault.Fault{After: 100}, io.ErrShortWrite},
		{"fsync fails", diskfault.Fault{OnSync: true, Err: syscall.EIO}, syscall.EIO},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			path := filepath.Join(dir, "meta.json")
			if err := os.WriteFile(path, []byte("old"), 0o644); err != nil {
				t.Fatal(err)
			}
			c.f.Under = dir
			remove := diskfault.Inject(c.f)
			err := WriteBytes(path, data)
			remove()
			if !errors.Is(err, c.want) || !strings.Contains(err.Error(), path) {
				t.Fatalf("got %v, want %v naming %s", err, c.want, path)
			}
			if b, _ := os.ReadFile(path); string(b) != "old" {
				t.Errorf("the previous file now holds %d bytes, want %q", len(b), "old")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 1 {
				t.Errorf("the failed write left %d entries in %s, want only the previous file", len(ents), dir)
			}
			if err := WriteBytes(path, data); err != nil {
				t.Fatalf("after the fault is gone: %v", err)
			}
			if b, _ := os.ReadFile(path); string(b) != string(data) {
				t.Errorf("the file holds %d bytes, want %d", len(b), len(data))
			}
		})
	}
}
