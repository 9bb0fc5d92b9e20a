package pipeline

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// runLockFile is the lock one pipeline process holds on a run directory
// while it runs; the kernel drops it when the process dies, even by
// SIGKILL, so a crashed run never blocks the next one.
const runLockFile = ".lock"

// claimRunDir takes the run directory for this process: an exclusive,
// non-blocking flock (two processes writing the same checkpoints would
// corrupt each other's retention and outputs), then removes the temporary
// files and directories an interrupted earlier process left behind in the
// run directory and in the plan's export folders. It returns the release
// function.
func claimRunDir(p *Plan) (func(), error) {
	path := filepath.Join(p.RunDir, runLockFile)
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run directory: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			who := ""
			if b, err := os.ReadFile(path); err == nil && len(b) > 0 {
				who = " (pid " + strings.TrimSpace(string(b)) + ")"
			}
			return nil, fmt.Errorf("run directory %s is in use by another pipeline process%s; wait for it to finish or stop it, or change name/output_dir", p.RunDir, who)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	f.Truncate(0)
	f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	removeLeftovers(p.RunDir, true)
	for _, s := range p.Stages {
		if s.Export != nil && !within(s.Export.Out, p.RunDir) {
			// A folder the user named: only the deployment folders export
			// writes, not what else is there.
			removeLeftovers(filepath.Join(s.Export.Out, "student"), false)
			removeLeftovers(filepath.Join(s.Export.Out, "teacher"), false)
		}
	}
	return func() { f.Close() }, nil
}

// isLeftover reports whether name is a temporary name of mohawk's atomic
// writers: ".NAME.tmp-*" files (atomicfile) and ".tmp-*" directories
// (checkpoints being written or retired).
func isLeftover(name string) bool {
	return strings.HasPrefix(name, tmpPrefix) || (strings.HasPrefix(name, ".") && strings.Contains(name, ".tmp-"))
}

// removeLeftovers removes the temporary files and directories in dir (and,
// with deep, in its subdirectories).
func removeLeftovers(dir string, deep bool) {
	var gone []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if !deep && d.IsDir() && path != dir {
			if isLeftover(d.Name()) {
				gone = append(gone, path)
			}
			return filepath.SkipDir
		}
		if path != dir && isLeftover(d.Name()) {
			gone = append(gone, path)
			if d.IsDir() {
				return filepath.SkipDir
			}
		}
		return nil
	})
	for _, g := range gone {
		os.RemoveAll(g)
	}
}

func within(path, dir string) bool {
	rel, err := filepath.Rel(dir, path)
	return err == nil && filepath.IsLocal(rel)
}

// endLine appends a newline to an append-only log whose last line was torn
// (a crash in the middle of a write), so the next record starts a line of
// its own; readers skip the torn line.
func endLine(f *os.File) {
	fi, err := f.Stat()
	if err != nil || fi.Size() == 0 {
		return
	}
	last := make([]byte, 1)
	if _, err := f.ReadAt(last, fi.Size()-1); err == nil && last[0] != '\n' {
		f.Write([]byte("\n"))
	}
}
