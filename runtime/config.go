package runtime

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strings"
)

// Provider names accepted in Config.Provider.
const (
	ProviderCPU      = "cpu"
	ProviderCUDA     = "cuda"
	ProviderTensorRT = "tensorrt"
)

// Config selects the ONNX Runtime library and how sessions run. The zero
// value is valid and means the defaults (see Defaults). It is decoded from
// the `runtime` section of the pipeline's YAML by the pipeline package; this
// package only reads it.
type Config struct {
	// Library is an explicit path to libonnxruntime.so (ORT 1.29.0). Empty:
	// look at $ORT_LIB, $ONNXRUNTIME_SHARED_LIBRARY_PATH, then the cache.
	Library string `mapstructure:"library"`
	// CacheDir is mohawk's cache root; the library lives in
	// CacheDir/onnxruntime-1.29.0/. Empty: $XDG_CACHE_HOME/mohawk or
	// ~/.cache/mohawk.
	CacheDir string `mapstructure:"cache_dir"`
	// AutoInstall installs the library into the cache with npm when it is
	// not found. nil means true.
	AutoInstall *bool `mapstructure:"auto_install"`
	// Provider is the execution provider: "cpu" (default), "cuda" or
	// "tensorrt" (TensorRT with CUDA for the nodes TensorRT does not take).
	Provider string `mapstructure:"provider"`
	// Fallback "cpu" lets Open continue on the CPU, with a warning, when the
	// requested GPU provider cannot be loaded. Empty: such a failure is an
	// error.
	Fallback string         `mapstructure:"fallback"`
	CPU      CPUConfig      `mapstructure:"cpu"`
	CUDA     CUDAConfig     `mapstructure:"cuda"`
	TensorRT TensorRTConfig `mapstructure:"tensorrt"`
	// DisableCPUFallback makes session creation fail when a node has no
	// kernel on the GPU provider instead of silently running it on the CPU
	// (ORT's session.disable_cpu_ep_fallback). Ignored on the CPU provider.
	DisableCPUFallback bool `mapstructure:"disable_cpu_fallback"`
	// MemPattern turns on ORT's memory pattern (its enable_mem_pattern,
	// on in ORT by default, off here): tensors whose sizes the session can
	// work out from its inputs are placed at planned offsets in one block,
	// reserved whole, while the rest come from the arena. The two do not
	// share memory: Phi-1.5's Stage 3 step with the fused decays held a
	// 29.6 GB block beside 33 GB of arena for a 34.0 GB peak in use (63.9
	// GB reserved on an H100, docs/benchmarks.md); without the pattern
	// every tensor comes from the arena and a freed one's memory serves the
	// next.
	MemPattern bool `mapstructure:"mem_pattern"`
	// OptimizationLevel is ORT's graph optimisation level: "disable",
	// "basic", "extended" or "all" (default).
	OptimizationLevel string `mapstructure:"optimization_level"`
	// LogLevel is ORT's own log level, written by ORT to stderr: "verbose",
	// "info", "warning", "error" (default) or "fatal".
	LogLevel string `mapstructure:"log_level"`
	// ProfileDir makes ORT profile every session into a JSON trace in this
	// (existing) folder, named after the session and written when the
	// session closes; SummarizeProfile reads it. Node times are host times:
	// on a GPU they measure kernel launches unless CUDA_LAUNCH_BLOCKING=1
	// makes every launch wait for its kernel.
	ProfileDir string `mapstructure:"profile_dir"`
}

// CPUConfig holds the CPU thread pools; 0 lets ORT choose.
type CPUConfig struct {
	IntraOpThreads int `mapstructure:"intra_op_threads"`
	InterOpThreads int `mapstructure:"inter_op_threads"`
}

// CUDAConfig holds the CUDA execution provider's options.
type CUDAConfig struct {
	DeviceID int `mapstructure:"device_id"`
	// TF32 allows TensorFloat-32 in MatMul/Conv (ORT's use_tf32). Off by
	// default here, so float32 results match the CPU closely.
	TF32 bool `mapstructure:"tf32"`
	// MemLimitBytes caps ORT's CUDA arena (gpu_mem_limit); 0 means no cap.
	MemLimitBytes int64 `mapstructure:"mem_limit_bytes"`
	// ArenaExtend is how ORT's CUDA arena grows when it runs out:
	// "next_power_of_two" (ORT's default; fewer, larger allocations that
	// reserve more than the tensors need) or "same_as_requested" (what is
	// asked for, no more).
	ArenaExtend string `mapstructure:"arena_extend_strategy"`
}

// TensorRTConfig holds the TensorRT execution provider's options.
type TensorRTConfig struct {
	DeviceID int  `mapstructure:"device_id"`
	FP16     bool `mapstructure:"fp16"`
	// WorkspaceBytes is trt_max_workspace_size; 0 keeps ORT's default.
	WorkspaceBytes int64 `mapstructure:"workspace_bytes"`
	// CacheDir enables TensorRT's engine cache in that directory.
	CacheDir string `mapstructure:"cache_dir"`
}

var (
	optimizationLevels = []string{"disable", "basic", "extended", "all"}
	logLevels          = []string{"verbose", "info", "warning", "error", "fatal"}
	providers          = []string{ProviderCPU, ProviderCUDA, ProviderTensorRT}
	arenaExtends       = map[string]string{"next_power_of_two": "kNextPowerOfTwo", "same_as_requested": "kSameAsRequested"}
)

// Defaults returns the configuration that the zero Config stands for, with
// every default written out.
func Defaults() Config {
	yes := true
	return Config{
		AutoInstall:       &yes,
		Provider:          ProviderCPU,
		OptimizationLevel: "all",
		LogLevel:          "error",
		CUDA:              CUDAConfig{ArenaExtend: "next_power_of_two"},
	}
}

// withDefaults fills the empty fields of c.
func (c Config) withDefaults() Config {
	d := Defaults()
	if c.AutoInstall == nil {
		c.AutoInstall = d.AutoInstall
	}
	if c.Provider == "" {
		c.Provider = d.Provider
	}
	if c.OptimizationLevel == "" {
		c.OptimizationLevel = d.OptimizationLevel
	}
	if c.LogLevel == "" {
		c.LogLevel = d.LogLevel
	}
	if c.CUDA.ArenaExtend == "" {
		c.CUDA.ArenaExtend = d.CUDA.ArenaExtend
	}
	return c
}

func (c Config) autoInstall() bool { return c.AutoInstall == nil || *c.AutoInstall }

// Validate reports every problem in c at once, each naming the key to change.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	oneOf := func(key, v string, allowed []string) {
		if !slices.Contains(allowed, v) {
			bad("runtime.%s: %q is not one of %s", key, v, strings.Join(allowed, ", "))
		}
	}
	oneOf("provider", c.Provider, providers)
	if c.Fallback != "" && c.Fallback != ProviderCPU {
		bad("runtime.fallback: %q is not \"cpu\" or empty", c.Fallback)
	}
	oneOf("optimization_level", c.OptimizationLevel, optimizationLevels)
	oneOf("log_level", c.LogLevel, logLevels)
	nonNeg := func(key string, v int64) {
		if v < 0 {
			bad("runtime.%s: %d is negative", key, v)
		}
	}
	if c.ProfileDir != "" {
		if st, err := os.Stat(c.ProfileDir); err != nil || !st.IsDir() {
			bad("runtime.profile_dir: %s is not an existing folder; create it first", c.ProfileDir)
		}
	}
	nonNeg("cpu.intra_op_threads", int64(c.CPU.IntraOpThreads))
	nonNeg("cpu.inter_op_threads", int64(c.CPU.InterOpThreads))
	nonNeg("cuda.device_id", int64(c.CUDA.DeviceID))
	nonNeg("cuda.mem_limit_bytes", c.CUDA.MemLimitBytes)
	oneOf("cuda.arena_extend_strategy", c.CUDA.ArenaExtend, slices.Sorted(maps.Keys(arenaExtends)))
	nonNeg("tensorrt.device_id", int64(c.TensorRT.DeviceID))
	nonNeg("tensorrt.workspace_bytes", c.TensorRT.WorkspaceBytes)
	return errors.Join(errs...)
}
