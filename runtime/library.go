package runtime

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ORTVersion is the ONNX Runtime release this package is built for; it must
// match github.com/yalue/onnxruntime_go v1.27.0.
const ORTVersion = "1.29.0"

// LibraryName is the file name of the core library inside the cache.
const LibraryName = "libonnxruntime.so"

// The provider libraries ORT loads from the core library's folder.
const (
	providersSharedLib = "libonnxruntime_providers_shared.so"
	providerCUDALib    = "libonnxruntime_providers_cuda.so"
	providerTRTLib     = "libonnxruntime_providers_tensorrt.so"
)

// Environment variables consulted by FindLibrary, in this order.
const (
	EnvORTLib        = "ORT_LIB"
	EnvORTSharedPath = "ONNXRUNTIME_SHARED_LIBRARY_PATH"
)

// ErrLibraryNotFound is returned (wrapped) when no library is found and none
// may or can be installed.
var ErrLibraryNotFound = errors.New("ONNX Runtime library not found")

// Member is one file taken from an npm package tarball.
type Member struct {
	Path   string // path inside the tarball, e.g. "package/bin/.../libonnxruntime.so.1"
	Name   string // file name written into the install folder
	SHA256 string // expected sha256 (hex) of the file
}

// Package is an npm package that ships ORT files, pinned by checksums.
type Package struct {
	Spec    string // npm spec, e.g. "onnxruntime-node@1.29.0"
	SHA256  string // expected sha256 (hex) of the tarball npm pack writes
	Members []Member
}

// CorePackage ships the CPU core library, built with the CUDA provider
// bridge.
var CorePackage = Package{
	Spec:   "onnxruntime-node@1.29.0",
	SHA256: "cfdfb45ec4044b1fdca43e5d2e180fb6817e649ff8ad1e0dfc90e18e51b67037",
	Members: []Member{{
		Path:   "package/bin/napi-v6/linux/x64/libonnxruntime.so.1",
		Name:   LibraryName,
		SHA256: "89688f5cf51c7e31befbb7b9101bc027799009b18d1baa9a5b1146a72e69538d",
	}},
}

// GPUPackage ships ORT 1.29.0's CUDA 13 and TensorRT 10 provider libraries.
var GPUPackage = Package{
	Spec:   "com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9",
	SHA256: "2b459e0c17f340c92970c10ed86de4f37a3009f93c14053e6ad4334cbb6be412",
	Members: []Member{
		{
			Path:   "package/Plugins/Linux/x64/libonnxruntime_providers_shared.so",
			Name:   providersSharedLib,
			SHA256: "c6a12593396095f5670160e284c35d1700b7708cf3037b7042e2a5200ccae772",
		},
		{
			Path:   "package/Plugins/Linux/x64/libonnxruntime_providers_cuda.so",
			Name:   providerCUDALib,
			SHA256: "56cf3254b118ad837ccc4ed8f6d1b23504bbf7ef91b34cbc0b289cb7f10b3037",
		},
		{
			Path:   "package/Plugins/Linux/x64/libonnxruntime_providers_tensorrt.so",
			Name:   providerTRTLib,
			SHA256: "ef6071798a339038ad66c428fb1a809cf8e499bffc3b6870e4e8bc4f4c6a6320",
		},
	},
}

// DefaultPackages lists what Install fetches: the core, plus the GPU
// providers when gpu is set.
func DefaultPackages(gpu bool) []Package {
	if gpu {
		return []Package{CorePackage, GPUPackage}
	}
	return []Package{CorePackage}
}

// DefaultCacheDir is mohawk's cache root: $XDG_CACHE_HOME/mohawk, else
// ~/.cache/mohawk.
func DefaultCacheDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("no per-user cache folder (%v); set runtime.cache_dir", err)
	}
	return filepath.Join(d, "mohawk"), nil
}

// installDir is the folder holding the library and its providers.
func installDir(cacheRoot string) (string, error) {
	if cacheRoot == "" {
		var err error
		if cacheRoot, err = DefaultCacheDir(); err != nil {
			return "", err
		}
	}
	return filepath.Join(cacheRoot, "onnxruntime-"+ORTVersion), nil
}

// Library sources reported by FindLibrary.
const (
	FromConfig = "runtime.library"
	FromORTLib = "$" + EnvORTLib
	FromORTEnv = "$" + EnvORTSharedPath
	FromCache  = "cache"
)

// FindLibrary looks for the ORT library without installing anything, in this
// order: cfg.Library, $ORT_LIB, $ONNXRUNTIME_SHARED_LIBRARY_PATH, then
// <cache>/onnxruntime-1.29.0/libonnxruntime.so. It returns the absolute path
// and where it came from (FromConfig, FromORTLib, FromORTEnv or FromCache). A
// path that is set but names no file is an error rather than a reason to
// look further. When nothing is found the error wraps ErrLibraryNotFound and
// says where it looked.
func FindLibrary(cfg Config) (path, from string, err error) {
	explicit := []struct{ from, path string }{
		{FromConfig, cfg.Library},
		{FromORTLib, os.Getenv(EnvORTLib)},
		{FromORTEnv, os.Getenv(EnvORTSharedPath)},
	}
	for _, c := range explicit {
		if c.path == "" {
			continue
		}
		p, err := filepath.Abs(c.path)
		if err != nil {
			return "", "", fmt.Errorf("%s %q: %w", c.from, c.path, err)
		}
		st, err := os.Stat(p)
		if err != nil {
			return "", "", fmt.Errorf("%s is %q, but %w; fix or unset it", c.from, c.path, err)
		}
		if st.IsDir() {
			return "", "", fmt.Errorf("%s is %q, a folder; it must name the library file (%s)", c.from, c.path, LibraryName)
		}
		return p, c.from, nil
	}
	dir, err := installDir(cfg.CacheDir)
	if err != nil {
		return "", "", err
	}
	p := filepath.Join(dir, LibraryName)
	if _, err := os.Stat(p); err == nil {
		return p, FromCache, nil
	}
	return "", "", fmt.Errorf("%w: runtime.library, $%s and $%s are unset and %s does not exist",
		ErrLibraryNotFound, EnvORTLib, EnvORTSharedPath, p)
}

// missingProviderFiles lists the provider libraries that provider needs and
// that are absent from dir.
func missingProviderFiles(dir, provider string) []string {
	var need []string
	switch provider {
	case ProviderCUDA:
		need = []string{providersSharedLib, providerCUDALib}
	case ProviderTensorRT:
		need = []string{providersSharedLib, providerCUDALib, providerTRTLib}
	}
	var missing []string
	for _, n := range need {
		if _, err := os.Stat(filepath.Join(dir, n)); err != nil {
			missing = append(missing, n)
		}
	}
	return missing
}

// sameDir reports whether two folders are the same one.
func sameDir(a, b string) bool {
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	if errA != nil || errB != nil {
		return filepath.Clean(a) == filepath.Clean(b)
	}
	return os.SameFile(sa, sb)
}

// quoteList formats names as "a", "b".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = fmt.Sprintf("%q", n)
	}
	return strings.Join(q, ", ")
}
