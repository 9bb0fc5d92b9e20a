package diskfault

import (
	"io"
	"path/filepath"
	"strings"
	"sync"
)

// Fault describes how writes to some files fail.
type Fault struct {
	// Under is the directory whose files (at any depth) fail; tests pass
	// their own temporary directory, so parallel tests are not disturbed.
	Under string
	// Name, when set, limits the fault to files with this base name.
	Name string
	// After is how many bytes of a file are written before a write fails.
	After int64
	// Err is the error of the failing write or fsync (syscall.ENOSPC,
	// syscall.EIO); nil makes the failing write short: fewer bytes than
	// asked for and no error, as a broken writer would.
	Err error
	// OnSync makes fsync fail with Err, after every write succeeded.
	OnSync bool
}

// File is the part of *os.File that atomicfile writes through.
type File interface {
	io.Writer
	Sync() error
}

var (
	mu     sync.Mutex
	faults = map[*Fault]bool{}
)

// Inject makes files written from now on fail as f says, until the
// returned function is called (pass it to t.Cleanup).
func Inject(f Fault) (remove func()) {
	p := &f
	mu.Lock()
	faults[p] = true
	mu.Unlock()
	return func() {
		mu.Lock()
		delete(faults, p)
		mu.Unlock()
	}
}

// Wrap returns file, which will become path, with the fault injected for
// path if there is one; otherwise file itself.
func Wrap(path string, file File) File {
	mu.Lock()
	defer mu.Unlock()
	for f := range faults {
		if f.applies(path) {
			return &faulty{File: file, f: *f}
		}
	}
	return file
}

func (f *Fault) applies(path string) bool {
	rel, err := filepath.Rel(f.Under, path)
	if f.Under == "" || err != nil || rel == ".." || strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
		return false
	}
	return f.Name == "" || f.Name == filepath.Base(path)
}

// faulty is a File whose writes stop after f.After bytes.
type faulty struct {
	File
	f       Fault
	written int64
}

func (w *faulty) Write(p []byte) (int, error) {
	if w.f.OnSync || w.written+int64(len(p)) <= w.f.After {
		n, err := w.File.Write(p)
		w.written += int64(n)
		return n, err
	}
	n, err := w.File.Write(p[:max(0, w.f.After-w.written)])
	w.written += int64(n)
	if err != nil {
		return n, err
	}
	return n, w.f.Err
}

func (w *faulty) Sync() error {
	if w.f.OnSync {
		return w.f.Err
	}
	return w.File.Sync()
}
