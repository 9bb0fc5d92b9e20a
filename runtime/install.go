package runtime

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"

	"mohawk/internal/filehash"
)

// InstallOptions configures Install.
type InstallOptions struct {
	// CacheDir is the cache root (see Config.CacheDir); empty: the default.
	CacheDir string
	// GPU also installs the CUDA and TensorRT provider libraries (~180 MB
	// download) beside the core library.
	GPU bool
	// Progress receives progress bars and status lines; nil discards them.
	Progress io.Writer
	// NPM is the npm executable, a name looked up in $PATH or a path;
	// empty means "npm".
	NPM string
	// Packages overrides DefaultPackages(GPU), e.g. with other checksums.
	Packages []Package
}

// ErrNPMNotFound is returned (wrapped) when the npm client is needed but
// cannot be run.
var ErrNPMNotFound = errors.New("npm not found")

// ChecksumError reports a file whose sha256 differs from the pinned one.
type ChecksumError struct {
	File string // what was checked: a tarball or a library file
	Want string // pinned sha256, hex
	Got  string // actual sha256, hex
}

func (e *ChecksumError) Error() string {
	return fmt.Sprintf("checksum mismatch for %s: want sha256 %s, got %s", e.File, e.Want, e.Got)
}

// Install puts ORT 1.29.0 into <cache>/onnxruntime-1.29.0/ and returns the
// path of libonnxruntime.so there. Files already present with the pinned
// checksum are kept; missing or corrupt ones are fetched again. For each
// package it runs `npm pack` in a temporary folder, checks the tarball's and
// each member's sha256 while streaming the needed members out of it, and
// moves the members into place (temporary file, fsync, rename) only when
// every checksum matches. Concurrent installs into one cache, from goroutines
// or processes, serialise on a lock file in that folder.
func Install(ctx context.Context, opts InstallOptions) (string, error) {
	progress := opts.Progress
	if progress == nil {
		progress = io.Discard
	}
	pkgs := opts.Packages
	if pkgs == nil {
		pkgs = DefaultPackages(opts.GPU)
	}
	dir, err := installDir(opts.CacheDir)
	if err != nil {
		return "", fmt.Errorf("install ONNX Runtime: %w", err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("install ONNX Runtime: %w", err)
	}
	unlock, err := lockDir(ctx, dir, progress)
	if err != nil {
		return "", fmt.Errorf("install ONNX Runtime into %s: %w", dir, err)
	}
	defer unlock()
	for _, pkg := range pkgs {
		todo, err := membersToInstall(dir, pkg, progress)
		if err != nil {
			return "", fmt.Errorf("install ONNX Runtime into %s: %w", dir, err)
		}
		if len(todo) == 0 {
			continue
		}
		if err := installPackage(ctx, dir, pkg, todo, opts.NPM, progress); err != nil {
			return "", fmt.Errorf("install ONNX Runtime into %s: %s: %w", dir, pkg.Spec, err)
		}
	}
	return filepath.Join(dir, LibraryName), nil
}

// membersToInstall returns the members of pkg that are missing from dir or
// whose checksum is wrong.
func membersToInstall(dir string, pkg Package, progress io.Writer) ([]Member, error) {
	var todo []Member
	for _, m := range pkg.Members {
		got, err := filehash.SHA256(filepath.Join(dir, m.Name))
		switch {
		case errors.Is(err, os.ErrNotExist):
			todo = append(todo, m)
		case err != nil:
			return nil, err
		case got != m.SHA256:
			fmt.Fprintf(progress, "runtime: %s has sha256 %s, want %s; installing it again\n", m.Name, got, m.SHA256)
			todo = append(todo, m)
		}
	}
	return todo, nil
}

func installPackage(ctx context.Context, dir string, pkg Package, todo []Member, npm string, progress io.Writer) error {
	if npm == "" {
		npm = "npm"
	}
	npmPath, err := exec.LookPath(npm)
	if err != nil {
		return fmt.Errorf("%w (%v): install npm (Debian/Ubuntu: apt-get install npm) so that mohawk can fetch "+
			"ONNX Runtime %s, or set runtime.library or $%s to an existing ORT %s %s",
			ErrNPMNotFound, err, ORTVersion, EnvORTLib, ORTVersion, LibraryName)
	}
	tmp, err := os.MkdirTemp(dir, ".npm-pack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)

	fmt.Fprintf(progress, "runtime: fetching %s with npm into %s\n", pkg.Spec, dir)
	tgz, err := npmPack(ctx, npmPath, pkg.Spec, tmp, progress)
	if err != nil {
		return err
	}
	temps, err := extractMembers(ctx, tgz, dir, pkg, todo, progress)
	defer func() {
		for _, t := range temps {
			os.Remove(t) // no-op once renamed
		}
	}()
	if err != nil {
		return err
	}
	// Rename the core library last: its presence means "installed".
	order := slices.Clone(todo)
	slices.SortStableFunc(order, func(a, b Member) int {
		return boolCmp(a.Name == LibraryName, b.Name == LibraryName)
	})
	for _, m := range order {
		if err := os.Rename(temps[m.Name], filepath.Join(dir, m.Name)); err != nil {
			return err
		}
	}
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	for _, m := range order {
		fmt.Fprintf(progress, "runtime: installed %s (sha256 verified)\n", filepath.Join(dir, m.Name))
	}
	return nil
}

func boolCmp(a, b bool) int {
	switch {
	case a == b:
		return 0
	case a:
		return 1
	}
	return -1
}

// npmPack runs `npm pack spec` in tmp, showing a spinner, and returns the
// tarball it wrote.
func npmPack(ctx context.Context, npmPath, spec, tmp string, progress io.Writer) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd := exec.CommandContext(ctx, npmPath, "pack", spec)
	cmd.Dir = tmp
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second

	bar := progressbar.NewOptions(-1,
		progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription("npm pack "+spec),
		progressbar.OptionSpinnerType(14),
		progressbar.OptionSetElapsedTime(true),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }),
		// The library's own spinner goroutine reads its state unlocked
		// (a data race); animate it from one goroutine here instead.
		progressbar.OptionSetSpinnerChangeInterval(0),
	)
	done := make(chan struct{})
	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				bar.Finish()
				return
			case <-t.C:
				bar.Add(1)
			}
		}
	}()
	err := cmd.Run()
	close(done)
	<-stopped
	if err != nil {
		if ctx.Err() != nil {
			return "", ctx.Err()
		}
		return "", fmt.Errorf("npm pack failed (%v): %s; check that npm can reach its registry (`npm config get registry`)",
			err, tail(stderr.String()+stdout.String(), 1500))
	}
	tgzs, _ := filepath.Glob(filepath.Join(tmp, "*.tgz"))
	if len(tgzs) != 1 {
		return "", fmt.Errorf("npm pack wrote %d tarballs (%s), want 1; its output: %s",
			len(tgzs), strings.Join(tgzs, ", "), tail(stdout.String(), 500))
	}
	return tgzs[0], nil
}

// tail returns the last n bytes of s, trimmed.
func tail(s string, n int) string {
	s = strings.TrimSpace(s)
	if len(s) > n {
		s = "..." + s[len(s)-n:]
	}
	if s == "" {
		return "(no output)"
	}
	return s
}

// extractMembers streams tgz once: it hashes every byte of the tarball and
// writes the wanted members to temporary files in dir, hashing them too. It
// returns the temporary paths by member name only if the tarball and all
// members match their checksums; the caller removes the temporary files.
func extractMembers(ctx context.Context, tgz, dir string, pkg Package, todo []Member, progress io.Writer) (map[string]string, error) {
	f, err := os.Open(tgz)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	bar := progressbar.NewOptions64(st.Size(),
		progressbar.OptionSetWriter(progress),
		progressbar.OptionSetDescription("verify+extract "+filepath.Base(tgz)),
		progressbar.OptionShowBytes(true),
		progressbar.OptionSetWidth(30),
		progressbar.OptionThrottle(200*time.Millisecond),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(progress) }),
	)
	defer bar.Finish()
	tarHash := sha256.New()
	raw := io.TeeReader(f, io.MultiWriter(tarHash, bar))

	want := map[string]Member{}
	for _, m := range todo {
		want[m.Path] = m
	}
	temps := map[string]string{}
	var memberErrs []error
	gz, err := gzip.NewReader(raw)
	if err != nil {
		return temps, fmt.Errorf("read %s: %w", filepath.Base(tgz), err)
	}
	tr := tar.NewReader(gz)
	for len(temps) < len(want) {
		if err := ctx.Err(); err != nil {
			return temps, err
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return temps, fmt.Errorf("read %s: %w", filepath.Base(tgz), err)
		}
		m, ok := want[hdr.Name]
		if !ok || temps[m.Name] != "" {
			continue
		}
		if hdr.Typeflag != tar.TypeReg {
			return temps, fmt.Errorf("%s in %s is not a regular file", hdr.Name, filepath.Base(tgz))
		}
		tmp, sum, err := writeTemp(dir, m.Name, tr)
		if tmp != "" {
			temps[m.Name] = tmp
		}
		if err != nil {
			return temps, err
		}
		if sum != m.SHA256 {
			memberErrs = append(memberErrs, &ChecksumError{File: m.Path + " in " + pkg.Spec, Want: m.SHA256, Got: sum})
		}
	}
	// Hash the rest of the tarball without decompressing it.
	if _, err := io.Copy(io.Discard, raw); err != nil {
		return temps, err
	}
	if got := hex.EncodeToString(tarHash.Sum(nil)); got != pkg.SHA256 {
		return temps, &ChecksumError{File: "npm tarball of " + pkg.Spec, Want: pkg.SHA256, Got: got}
	}
	for _, m := range todo {
		if temps[m.Name] == "" {
			memberErrs = append(memberErrs, fmt.Errorf("%s has no file %s", pkg.Spec, m.Path))
		}
	}
	return temps, errors.Join(memberErrs...)
}

// writeTemp copies r into a new temporary file in dir (mode 0755, synced)
// and returns its path and sha256.
func writeTemp(dir, name string, r io.Reader) (path, sum string, err error) {
	f, err := os.CreateTemp(dir, "."+name+".tmp-")
	if err != nil {
		return "", "", err
	}
	path = f.Name()
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if err == nil {
		err = f.Chmod(0o755)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return path, "", fmt.Errorf("write %s: %w", path, err)
	}
	return path, hex.EncodeToString(h.Sum(nil)), nil
}
