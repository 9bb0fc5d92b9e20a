package runtime

import (
	"mohawk/tensors"

	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrVersionMismatch is returned (wrapped) when the library found is not ORT
// 1.29.0.
var ErrVersionMismatch = errors.New("wrong ONNX Runtime version")

// The process-wide ORT environment, shared by every open Env. onnxruntime_go
// keeps one environment per process, bound to one library file.
var global struct {
	mu   sync.Mutex
	lib  string // library the environment was created from
	refs int    // open Envs
}

// Env is an open ONNX Runtime: the library, the execution provider in use
// and the session options every session gets. Close it after its sessions.
// Its methods may be called from several goroutines.
type Env struct {
	cfg      Config // with defaults filled in
	lib      string
	provider string
	progress io.Writer

	mu         sync.Mutex
	closed     bool
	sessions   map[*Session]struct{}
	residents  map[*Resident]struct{}
	identities map[tensors.DType]*Session // Fetch's copy sessions
	arenas     []SessionArena             // of the closed sessions (ArenaStats)

	hostIn, hostOut atomic.Int64 // HostTraffic
}

// HostTraffic is the bytes that runs of e's sessions have taken from host
// tensors (in) and returned as host tensors (out) since Open: every input
// and output of Run, the host feeds and fetched outputs of RunResident
// (Fetch included). Resident values count nothing. Under a GPU provider
// these are the bytes that cross between host and device memory.
func (e *Env) HostTraffic() (in, out int64) { return e.hostIn.Load(), e.hostOut.Load() }

// Open finds the ORT library (installing it into the cache when allowed),
// initialises the process-wide ORT environment if no other Env holds it,
// checks that the library is ORT 1.29.0 (and the binary is built with the
// onnxruntime_go version runtime was written for) and makes sure the configured
// execution provider loads. Status lines, install progress and fallback
// warnings go to progress (nil discards them).
//
// Several Envs may be open at once (with different providers or options)
// as long as they use the same library: a process loads one ORT library.
func Open(cfg Config, progress io.Writer) (*Env, error) {
	if progress == nil {
		progress = io.Discard
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("runtime: invalid configuration:\n%w", err)
	}
	if err := checkWrapperVersion(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	lib, err := resolveLibrary(cfg, progress)
	if err != nil {
		return nil, err
	}
	provider, provErr := prepareProvider(cfg, lib, progress)

	global.mu.Lock()
	defer global.mu.Unlock()
	if err := acquireEnvironment(lib, cfg.LogLevel); err != nil {
		return nil, err
	}
	if provErr == nil && provider != ProviderCPU {
		provErr = probeProvider(cfg, lib, provider)
	}
	if provErr != nil {
		if cfg.Fallback != ProviderCPU {
			releaseEnvironment()
			return nil, fmt.Errorf("runtime: %w", provErr)
		}
		fmt.Fprintf(progress, "warning: runtime: %v; continuing on the CPU (runtime.fallback: cpu)\n", provErr)
		provider = ProviderCPU
	}
	return &Env{cfg: cfg, lib: lib, provider: provider, progress: progress, sessions: map[*Session]struct{}{},
		residents: map[*Resident]struct{}{}, identities: map[tensors.DType]*Session{}}, nil
}

// resolveLibrary finds the library or installs it into the cache.
func resolveLibrary(cfg Config, progress io.Writer) (string, error) {
	lib, _, err := FindLibrary(cfg)
	if err == nil {
		return lib, nil
	}
	if !errors.Is(err, ErrLibraryNotFound) {
		return "", fmt.Errorf("runtime: %w", err)
	}
	if !cfg.autoInstall() {
		return "", fmt.Errorf("runtime: %w; runtime.auto_install is false, so install it with `mohawk setup` "+
			"(runtime.Install) or set runtime.library or $%s to an ONNX Runtime %s %s", err, EnvORTLib, ORTVersion, LibraryName)
	}
	lib, ierr := Install(context.Background(), InstallOptions{CacheDir: cfg.CacheDir, Progress: progress})
	if ierr != nil {
		return "", fmt.Errorf("runtime: %w; installing it failed: %w", err, ierr)
	}
	return lib, nil
}

// acquireEnvironment initialises ORT from lib, or shares the environment
// already created from the same file. global.mu must be held.
func acquireEnvironment(lib, logLevel string) error {
	if global.refs > 0 {
		if !sameFile(global.lib, lib) {
			return fmt.Errorf("runtime: this process already uses the ONNX Runtime library %s and cannot load a second one (%s); "+
				"close every runtime.Env first or configure the same library", global.lib, lib)
		}
		global.refs++
		return nil
	}
	ort.SetSharedLibraryPath(lib)
	if err := ort.InitializeEnvironment(logOption(logLevel)); err != nil {
		hint := ""
		if strings.Contains(err.Error(), "API base") {
			hint = fmt.Sprintf(" (it is older than ONNX Runtime 1.24; mohawk needs %s)", ORTVersion)
		}
		return fmt.Errorf("runtime: load ONNX Runtime library %s: %v%s; point runtime.library or $%s at an ORT %s %s, "+
			"or unset them to use the cache", lib, err, hint, EnvORTLib, ORTVersion, LibraryName)
	}
	if err := checkVersion(lib, ort.GetVersion()); err != nil {
		ort.DestroyEnvironment()
		return err
	}
	global.lib, global.refs = lib, 1
	return nil
}

// checkVersion compares the loaded library's version with ORTVersion.
func checkVersion(lib, got string) error {
	if got == ORTVersion {
		return nil
	}
	return fmt.Errorf("runtime: %w: %s is ONNX Runtime %s, but mohawk (onnxruntime_go v1.27.0) needs %s; "+
		"point runtime.library or $%s at an ORT %s library, or unset them to use the cache (`mohawk setup` installs it)",
		ErrVersionMismatch, lib, got, ORTVersion, EnvORTLib, ORTVersion)
}

// releaseEnvironment drops one reference; the last one destroys the ORT
// environment. global.mu must be held.
func releaseEnvironment() error {
	global.refs--
	if global.refs > 0 {
		return nil
	}
	global.lib = ""
	forgetAPI()
	if err := ort.DestroyEnvironment(); err != nil {
		return fmt.Errorf("runtime: destroy ONNX Runtime environment: %v", err)
	}
	return nil
}

func sameFile(a, b string) bool {
	if a == b {
		return true
	}
	sa, errA := os.Stat(a)
	sb, errB := os.Stat(b)
	return errA == nil && errB == nil && os.SameFile(sa, sb)
}

func logOption(level string) ort.EnvironmentOption {
	switch level {
	case "verbose":
		return ort.WithLogLevelVerbose()
	case "info":
		return ort.WithLogLevelInfo()
	case "warning":
		return ort.WithLogLevelWarning()
	case "fatal":
		return ort.WithLogLevelFatal()
	}
	return ort.WithLogLevelError()
}

// Provider is the execution provider sessions use: the configured one, or
// "cpu" after a fallback.
func (e *Env) Provider() string { return e.provider }

// Library is the path of the ORT library in use.
func (e *Env) Library() string { return e.lib }

// Close closes the sessions still open in e and releases the ORT
// environment; the last Env to close destroys it. Close is idempotent.
func (e *Env) Close() error {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil
	}
	e.closed = true
	sessions, residents := e.sessions, e.residents
	e.sessions = nil
	e.mu.Unlock()
	for r := range residents {
		r.Release()
	}

	var errs []error
	for s := range sessions {
		errs = append(errs, s.Close())
	}
	global.mu.Lock()
	errs = append(errs, releaseEnvironment())
	global.mu.Unlock()
	return errors.Join(errs...)
}
