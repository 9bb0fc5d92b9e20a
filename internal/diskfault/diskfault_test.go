package diskfault

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

// buffer is a File in memory.
type buffer struct{ bytes.Buffer }

func (*buffer) Sync() error { return nil }

func TestWrap(t *testing.T) {
	defer Inject(Fault{Under: "/runs/a", Name: "state.safetensors", After: 5, Err: syscall.ENOSPC})()
	for _, c := range []struct {
		path    string
		faulted bool
	}{
		{"/runs/a/state.safetensors", true},
		{"/runs/a/stages/x/state.safetensors", true},
		{"/runs/a/meta.json", false},
		{"/runs/ab/state.safetensors", false}, // a sibling, not under /runs/a
		{"/runs/state.safetensors", false},
	} {
		b := &buffer{}
		w := Wrap(c.path, b)
		n, err := w.Write([]byte("0123456789"))
		if c.faulted != errors.Is(err, syscall.ENOSPC) {
			t.Errorf("%s: write gave %d, %v; faulted %v", c.path, n, err, c.faulted)
		}
		if c.faulted && (n != 5 || b.String() != "01234") {
			t.Errorf("%s: %d bytes reported, %q written; want the first 5", c.path, n, b.String())
		}
	}
}

func TestFaultKinds(t *testing.T) {
	for _, c := range []struct {
		name    string
		f       Fault
		n       int
		write   error
		syncErr error
	}{
		{"ENOSPC", Fault{After: 3, Err: syscall.ENOSPC}, 3, syscall.ENOSPC, nil},
		{"short write", Fault{After: 3}, 3, nil, nil},
		{"EIO at fsync", Fault{OnSync: true, Err: syscall.EIO}, 10, nil, syscall.EIO},
	} {
		c.f.Under = t.TempDir()
		remove := Inject(c.f)
		w := Wrap(c.f.Under+"/f", &buffer{})
		n, err := w.Write([]byte("0123456789"))
		if n != c.n || !errors.Is(err, c.write) || (c.write == nil && err != nil) {
			t.Errorf("%s: write gave %d, %v; want %d, %v", c.name, n, err, c.n, c.write)
		}
		if err := w.Sync(); !errors.Is(err, c.syncErr) || (c.syncErr == nil && err != nil) {
			t.Errorf("%s: sync gave %v, want %v", c.name, err, c.syncErr)
		}
		remove()
		if _, ok := Wrap(c.f.Under+"/f", &buffer{}).(*buffer); !ok {
			t.Errorf("%s: the fault outlived its removal", c.name)
		}
	}
}
