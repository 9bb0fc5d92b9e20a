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
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// fakePackage writes a tarball laid out like an npm package, returns its
// path and a Package pinning the given members' checksums.
func fakePackage(t *testing.T, members map[string][]byte, extra int) (string, Package) {
	t.Helper()
	var buf bytes.Buffer
	gz := gzip.NewWriter(&buf)
	tw := tar.NewWriter(gz)
	write := func(name string, data []byte) {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(data)), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	write("package/package.json", []byte(`{"name":"fake"}`))
	pkg := Package{Spec: "fake-ort@1.0.0"}
	for _, name := range []string{"package/lib/libonnxruntime.so.1", "package/lib/libonnxruntime_providers_cuda.so"} {
		data, ok := members[name]
		if !ok {
			continue
		}
		write(name, data)
		pkg.Members = append(pkg.Members, Member{Path: name, Name: filepath.Base(strings.TrimSuffix(name, ".1")), SHA256: sha(data)})
	}
	// Trailing bulk after the members, so hashing must read past them.
	write("package/zzz-bulk.bin", bytes.Repeat([]byte{7}, extra))
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := gz.Close(); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "fake-ort-1.0.0.tgz")
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	pkg.SHA256 = sha(buf.Bytes())
	return path, pkg
}

// fakeNPM writes an npm stand-in that logs its arguments and copies tgz into
// the current folder, as `npm pack` does. script, if set, replaces the body.
func fakeNPM(t *testing.T, tgz, script string) (npm, log string) {
	t.Helper()
	dir := t.TempDir()
	log = filepath.Join(dir, "calls.log")
	if script == "" {
		script = fmt.Sprintf("sleep 0.2\ncp %q ./fake-ort-1.0.0.tgz\necho fake-ort-1.0.0.tgz\n", tgz)
	}
	npm = filepath.Join(dir, "npm")
	body := fmt.Sprintf("#!/bin/sh\necho \"$@\" >> %q\n%s", log, script)
	if err := os.WriteFile(npm, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return npm, log
}

func calls(t *testing.T, log string) []string {
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(strings.TrimSpace(string(b)), "\n")
}

func TestInstall(t *testing.T) {
	core, cuda := []byte("fake core library"), bytes.Repeat([]byte("cuda"), 50000)
	tgz, pkg := fakePackage(t, map[string][]byte{
		"package/lib/libonnxruntime.so.1":              core,
		"package/lib/libonnxruntime_providers_cuda.so": cuda,
	}, 300000)
	npm, log := fakeNPM(t, tgz, "")
	cache := t.TempDir()
	var progress bytes.Buffer
	lib, err := Install(context.Background(), InstallOptions{CacheDir: cache, NPM: npm, Packages: []Package{pkg}, Progress: &progress})
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(cache, "onnxruntime-"+ORTVersion)
	if lib != filepath.Join(dir, LibraryName) {
		t.Errorf("Install returned %q, want %q", lib, filepath.Join(dir, LibraryName))
	}
	for name, want := range map[string][]byte{LibraryName: core, providerCUDALib: cuda} {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s: %d bytes, err %v; want the member's %d bytes", name, len(got), err, len(want))
		}
		if st, err := os.Stat(filepath.Join(dir, name)); err == nil && st.Mode().Perm()&0o111 == 0 {
			t.Errorf("%s is not executable: %v", name, st.Mode())
		}
	}
	if c := calls(t, log); len(c) != 1 || c[0] != "pack fake-ort@1.0.0" {
		t.Errorf("npm calls %q, want one \"pack fake-ort@1.0.0\"", c)
	}
	for _, w := range []string{"npm pack fake-ort@1.0.0", "verify+extract", "installed " + lib} {
		if !strings.Contains(progress.String(), w) {
			t.Errorf("progress output does not contain %q:\n%s", w, progress.String())
		}
	}
	leftovers, _ := filepath.Glob(filepath.Join(dir, ".*tmp*"))
	packs, _ := filepath.Glob(filepath.Join(dir, ".npm-pack-*"))
	if len(leftovers)+len(packs) > 0 {
		t.Errorf("temporary files left: %v %v", leftovers, packs)
	}

	// Installed and intact: nothing to fetch.
	if _, err := Install(context.Background(), InstallOptions{CacheDir: cache, NPM: npm, Packages: []Package{pkg}}); err != nil {
		t.Fatal(err)
	}
	if c := calls(t, log); len(c) != 1 {
		t.Errorf("a second Install ran npm again: %q", c)
	}
	// A corrupt file is fetched again.
	if err := os.WriteFile(filepath.Join(dir, providerCUDALib), []byte("truncated"), 0o755); err != nil {
		t.Fatal(err)
	}
	progress.Reset()
	if _, err := Install(context.Background(), InstallOptions{CacheDir: cache, NPM: npm, Packages: []Package{pkg}, Progress: &progress}); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, providerCUDALib)); !bytes.Equal(got, cuda) {
		t.Error("the corrupt provider library was not replaced")
	}
	if !strings.Contains(progress.String(), providerCUDALib+" has sha256") {
		t.Errorf("no message about the corrupt file:\n%s", progress.String())
	}
}

func TestInstallErrors(t *testing.T) {
	core := []byte("fake core library")
	tgz, pkg := fakePackage(t, map[string][]byte{"package/lib/libonnxruntime.so.1": core}, 1000)
	npm, _ := fakeNPM(t, tgz, "")

	badTarball := pkg
	badTarball.SHA256 = strings.Repeat("0", 64)
	badMember := pkg
	badMember.Members = []Member{{Path: pkg.Members[0].Path, Name: LibraryName, SHA256: strings.Repeat("1", 64)}}
	missingMember := pkg
	missingMember.Members = []Member{{Path: "package/lib/nothing.so", Name: LibraryName, SHA256: strings.Repeat("2", 64)}}
	failingNPM, _ := fakeNPM(t, "", "echo 'npm error code E404' >&2\necho 'npm error 404 Not Found - GET https://registry/fake-ort' >&2\nexit 1\n")
	silentNPM, _ := fakeNPM(t, "", "exit 0\n")

	cases := []struct {
		name     string
		npm      string
		path     string // PATH for the case; "" keeps it
		pkg      Package
		want     []string
		checksum *ChecksumError
		is       error
	}{
		{name: "tarball checksum mismatch", npm: npm, pkg: badTarball,
			checksum: &ChecksumError{File: "npm tarball of fake-ort@1.0.0", Want: badTarball.SHA256, Got: pkg.SHA256},
			want:     []string{"checksum mismatch for npm tarball of fake-ort@1.0.0", "want sha256 " + badTarball.SHA256, "got " + pkg.SHA256}},
		{name: "member checksum mismatch", npm: npm, pkg: badMember,
			checksum: &ChecksumError{File: pkg.Members[0].Path + " in fake-ort@1.0.0", Want: strings.Repeat("1", 64), Got: sha(core)},
			want:     []string{"checksum mismatch for package/lib/libonnxruntime.so.1 in fake-ort@1.0.0"}},
		{name: "member missing from the tarball", npm: npm, pkg: missingMember,
			want: []string{"fake-ort@1.0.0 has no file package/lib/nothing.so"}},
		{name: "npm fails", npm: failingNPM, pkg: pkg,
			want: []string{"npm pack failed (exit status 1)", "E404", "npm config get registry"}},
		{name: "npm writes no tarball", npm: silentNPM, pkg: pkg, want: []string{"npm pack wrote 0 tarballs"}},
		{name: "npm path does not exist", npm: filepath.Join(t.TempDir(), "no-npm"), pkg: pkg, is: ErrNPMNotFound,
			want: []string{"npm not found", "apt-get install npm", "runtime.library or $ORT_LIB"}},
		{name: "npm not in an empty PATH", npm: "", path: "/nonexistent", pkg: pkg, is: ErrNPMNotFound,
			want: []string{"npm not found", `"npm": executable file not found in $PATH`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.path != "" {
				t.Setenv("PATH", c.path)
			}
			cache := t.TempDir()
			_, err := Install(context.Background(), InstallOptions{CacheDir: cache, NPM: c.npm, Packages: []Package{c.pkg}})
			if err == nil {
				t.Fatal("Install succeeded, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
			if c.checksum != nil {
				var ce *ChecksumError
				if !errors.As(err, &ce) || *ce != *c.checksum {
					t.Errorf("error %v: want ChecksumError %+v", err, *c.checksum)
				}
			}
			if c.is != nil && !errors.Is(err, c.is) {
				t.Errorf("error %v is not %v", err, c.is)
			}
			// Nothing half-done is left where the lookup would find it.
			entries, _ := os.ReadDir(filepath.Join(cache, "onnxruntime-"+ORTVersion))
			for _, e := range entries {
				if e.Name() != lockName {
					t.Errorf("left in the cache: %s", e.Name())
				}
			}
		})
	}
}

func TestInstallConcurrent(t *testing.T) {
	core := bytes.Repeat([]byte("core"), 100000)
	tgz, pkg := fakePackage(t, map[string][]byte{"package/lib/libonnxruntime.so.1": core}, 100000)
	npm, log := fakeNPM(t, tgz, "")
	cache := t.TempDir()
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = Install(context.Background(), InstallOptions{CacheDir: cache, NPM: npm, Packages: []Package{pkg}})
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("install %d: %v", i, err)
		}
	}
	if got, _ := os.ReadFile(filepath.Join(cache, "onnxruntime-"+ORTVersion, LibraryName)); !bytes.Equal(got, core) {
		t.Error("the installed library is not the member")
	}
	if c := calls(t, log); len(c) != 1 {
		t.Errorf("npm ran %d times, want once (the others wait for the lock and find the file)", len(c))
	}
}

func TestInstallCanceled(t *testing.T) {
	_, pkg := fakePackage(t, map[string][]byte{"package/lib/libonnxruntime.so.1": []byte("x")}, 10)
	npm, _ := fakeNPM(t, "", "sleep 10\n")
	ctx, cancel := context.WithCancel(context.Background())
	cache := t.TempDir()
	// Hold the lock so that Install waits, then cancel it.
	dir := filepath.Join(cache, "onnxruntime-"+ORTVersion)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDir(context.Background(), dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var progress bytes.Buffer
	done := make(chan error)
	go func() {
		_, err := Install(ctx, InstallOptions{CacheDir: cache, NPM: npm, Packages: []Package{pkg}, Progress: &progress})
		done <- err
	}()
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Install = %v, want context.Canceled", err)
	}
}
