package runtime

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func touch(t *testing.T, path string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte("lib"), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindLibraryOrder(t *testing.T) {
	tmp := t.TempDir()
	cfgLib := touch(t, filepath.Join(tmp, "cfg", LibraryName))
	ortLib := touch(t, filepath.Join(tmp, "ortlib", LibraryName))
	sharedLib := touch(t, filepath.Join(tmp, "shared", LibraryName))
	cacheRoot := filepath.Join(tmp, "cache")
	cacheLib := touch(t, filepath.Join(cacheRoot, "onnxruntime-"+ORTVersion, LibraryName))
	xdg := filepath.Join(tmp, "xdg")
	xdgLib := touch(t, filepath.Join(xdg, "mohawk", "onnxruntime-"+ORTVersion, LibraryName))
	missing := filepath.Join(tmp, "missing", LibraryName)

	cases := []struct {
		name                 string
		cfg                  Config
		ortLibEnv, sharedEnv string
		wantPath, wantFrom   string
		wantErr              []string
		wantErrIs            error
	}{
		{name: "config first", cfg: Config{Library: cfgLib, CacheDir: cacheRoot}, ortLibEnv: ortLib, sharedEnv: sharedLib,
			wantPath: cfgLib, wantFrom: FromConfig},
		{name: "then ORT_LIB", cfg: Config{CacheDir: cacheRoot}, ortLibEnv: ortLib, sharedEnv: sharedLib,
			wantPath: ortLib, wantFrom: FromORTLib},
		{name: "then ONNXRUNTIME_SHARED_LIBRARY_PATH", cfg: Config{CacheDir: cacheRoot}, sharedEnv: sharedLib,
			wantPath: sharedLib, wantFrom: FromORTEnv},
		{name: "then the configured cache", cfg: Config{CacheDir: cacheRoot}, wantPath: cacheLib, wantFrom: FromCache},
		{name: "default cache under XDG_CACHE_HOME", wantPath: xdgLib, wantFrom: FromCache},
		{name: "nothing found", cfg: Config{CacheDir: filepath.Join(tmp, "empty")},
			wantErrIs: ErrLibraryNotFound,
			wantErr:   []string{"runtime.library, $ORT_LIB and $ONNXRUNTIME_SHARED_LIBRARY_PATH are unset", filepath.Join(tmp, "empty", "onnxruntime-1.29.0", LibraryName)}},
		{name: "configured path missing is an error, not a fallthrough", cfg: Config{Library: missing, CacheDir: cacheRoot}, ortLibEnv: ortLib,
			wantErr: []string{"runtime.library is " + `"` + missing + `"`, "no such file"}},
		{name: "ORT_LIB missing", cfg: Config{CacheDir: cacheRoot}, ortLibEnv: missing,
			wantErr: []string{"$ORT_LIB is", "fix or unset it"}},
		{name: "ORT_LIB is a folder", cfg: Config{CacheDir: cacheRoot}, ortLibEnv: tmp,
			wantErr: []string{"$ORT_LIB", "a folder"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv(EnvORTLib, c.ortLibEnv)
			t.Setenv(EnvORTSharedPath, c.sharedEnv)
			t.Setenv("XDG_CACHE_HOME", xdg)
			path, from, err := FindLibrary(c.cfg)
			if c.wantErr != nil || c.wantErrIs != nil {
				if err == nil {
					t.Fatalf("FindLibrary = %q from %s, want an error", path, from)
				}
				for _, w := range c.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not contain %q", err, w)
					}
				}
				if c.wantErrIs != nil && !errors.Is(err, c.wantErrIs) {
					t.Errorf("error %v is not %v", err, c.wantErrIs)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if path != c.wantPath || from != c.wantFrom {
				t.Errorf("FindLibrary = %q from %s, want %q from %s", path, from, c.wantPath, c.wantFrom)
			}
		})
	}
}

func TestFindLibraryRelativePath(t *testing.T) {
	dir := t.TempDir()
	touch(t, filepath.Join(dir, LibraryName))
	t.Chdir(dir)
	t.Setenv(EnvORTLib, "")
	t.Setenv(EnvORTSharedPath, "")
	path, _, err := FindLibrary(Config{Library: LibraryName})
	if err != nil {
		t.Fatal(err)
	}
	if !filepath.IsAbs(path) {
		t.Errorf("path %q is not absolute (ORT finds providers next to it)", path)
	}
}

// unsetLibraryEnv leaves Open nothing to find but the (empty) cache dir.
func unsetLibraryEnv(t *testing.T) string {
	t.Setenv(EnvORTLib, "")
	t.Setenv(EnvORTSharedPath, "")
	return t.TempDir()
}

func TestOpenNoLibraryNoNPM(t *testing.T) {
	cache := unsetLibraryEnv(t)
	t.Setenv("PATH", "")
	var progress strings.Builder
	_, err := Open(Config{CacheDir: cache}, &progress)
	if err == nil {
		t.Fatal("Open succeeded without a library and without npm")
	}
	for _, w := range []string{
		"ONNX Runtime library not found",
		"runtime.library, $ORT_LIB and $ONNXRUNTIME_SHARED_LIBRARY_PATH are unset",
		filepath.Join(cache, "onnxruntime-1.29.0", LibraryName) + " does not exist",
		"npm not found", "apt-get install npm",
		"set runtime.library or $ORT_LIB",
	} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	if !errors.Is(err, ErrLibraryNotFound) || !errors.Is(err, ErrNPMNotFound) {
		t.Errorf("error %v should match ErrLibraryNotFound and ErrNPMNotFound", err)
	}
	t.Logf("message: %v", err)
}

func TestOpenAutoInstallOff(t *testing.T) {
	cache := unsetLibraryEnv(t)
	no := false
	_, err := Open(Config{CacheDir: cache, AutoInstall: &no}, nil)
	if err == nil || !strings.Contains(err.Error(), "runtime.auto_install is false") || !errors.Is(err, ErrLibraryNotFound) {
		t.Errorf("error %v, want one about auto_install", err)
	}
	if entries, _ := os.ReadDir(cache); len(entries) != 0 {
		t.Errorf("Open wrote into the cache with auto_install off: %v", entries)
	}
}

func TestOpenInvalidConfig(t *testing.T) {
	_, err := Open(Config{Provider: "gpu", OptimizationLevel: "max"}, nil)
	if err == nil {
		t.Fatal("Open accepted an invalid config")
	}
	for _, w := range []string{"invalid configuration", "runtime.provider", "runtime.optimization_level"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestCheckVersion(t *testing.T) {
	t.Parallel()
	if err := checkVersion("/x/lib.so", ORTVersion); err != nil {
		t.Errorf("checkVersion(%s) = %v", ORTVersion, err)
	}
	err := checkVersion("/x/lib.so", "1.30.0")
	if !errors.Is(err, ErrVersionMismatch) {
		t.Fatalf("checkVersion(1.30.0) = %v, want ErrVersionMismatch", err)
	}
	for _, w := range []string{"/x/lib.so is ONNX Runtime 1.30.0", "needs 1.29.0", "runtime.library", "$ORT_LIB"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not contain %q", err, w)
		}
	}
}

func TestOpenUnloadableLibrary(t *testing.T) {
	runChild(t, "TestChildUnloadableLibrary", "1")
}

func TestChildUnloadableLibrary(t *testing.T) {
	if os.Getenv(childEnv) == "" {
		t.Skip("runs only as the child process of TestOpenUnloadableLibrary")
	}
	bad := touch(t, filepath.Join(t.TempDir(), LibraryName))
	_, err := Open(Config{Library: bad}, nil)
	if err == nil {
		t.Fatal("Open loaded a file that is not a library")
	}
	for _, w := range []string{"load ONNX Runtime library " + bad, "file too short", "point runtime.library or $ORT_LIB at an ORT 1.29.0"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	t.Logf("message: %v", err)
	// Nothing is held after the failure: a real library loads next.
	if lib, _, err := FindLibrary(Config{}); err == nil {
		env, err := Open(Config{Library: lib}, nil)
		if err != nil {
			t.Fatalf("Open after a failed Open: %v", err)
		}
		env.Close()
	}
}
