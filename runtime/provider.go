package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
	"google.golang.org/protobuf/encoding/protowire"
)

// ErrProviderUnavailable is matched (errors.Is) by every *ProviderError.
var ErrProviderUnavailable = errors.New("execution provider unavailable")

// ProviderError says why a GPU execution provider cannot be used and what to
// install.
type ProviderError struct {
	Provider string // "cuda" or "tensorrt"
	Problem  string // what failed to load, with the loader's or ORT's message
	Fix      string // what to install or change
}

func (e *ProviderError) Error() string {
	return fmt.Sprintf("%s execution provider unavailable: %s; to use it, %s; or set runtime.provider: cpu, "+
		"or runtime.fallback: cpu to continue on the CPU with a warning", e.Provider, e.Problem, e.Fix)
}

func (e *ProviderError) Is(target error) bool { return target == ErrProviderUnavailable }

// System libraries the provider libraries need (their ELF NEEDED entries
// outside glibc/libstdc++), checked before anything is downloaded.
var (
	cudaSystemLibs = []string{"libcuda.so.1", "libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13", "libcurand.so.10"}
	trtSystemLibs  = []string{"libnvinfer.so.10", "libnvonnxparser.so.10", "libcudnn.so.9"}
)

const cudaFix = "install the NVIDIA driver (libcuda.so.1) and the CUDA 13 runtime libraries " +
	"(libcudart.so.13, libcublas.so.13, libcublasLt.so.13, libcurand.so.10) and add their folder to LD_LIBRARY_PATH " +
	"(e.g. /usr/local/cuda-13.0/targets/x86_64-linux/lib)"

const trtFix = cudaFix + ", plus TensorRT 10 (libnvinfer.so.10, libnvonnxparser.so.10) and cuDNN 9 (libcudnn.so.9)"

func providerFix(provider string) string {
	if provider == ProviderTensorRT {
		return trtFix
	}
	return cudaFix
}

// prepareProvider checks, before ORT is initialised, what a GPU provider
// needs on disk: the system CUDA (and TensorRT) libraries, then the provider
// libraries beside lib, installing those into the cache when lib is the
// cached one and auto-install is on. It returns the provider to use and, if
// it cannot be used, a *ProviderError.
func prepareProvider(cfg Config, lib string, progress io.Writer) (string, error) {
	cfg = cfg.withDefaults()
	p := cfg.Provider
	if p == ProviderCPU {
		return p, nil
	}
	need := cudaSystemLibs
	if p == ProviderTensorRT {
		need = append(append([]string{}, cudaSystemLibs...), trtSystemLibs...)
	}
	var failed []string
	for _, name := range need {
		if err := tryDlopen(name); err != nil {
			failed = append(failed, err.Error())
		}
	}
	if len(failed) > 0 {
		return p, &ProviderError{Provider: p, Problem: "the dynamic loader cannot load " + strings.Join(failed, "; "),
			Fix: providerFix(p)}
	}
	dir := filepath.Dir(lib)
	missing := missingProviderFiles(dir, p)
	if len(missing) == 0 {
		return p, nil
	}
	cacheDir, err := installDir(cfg.CacheDir)
	if err == nil && cfg.autoInstall() && sameDir(dir, cacheDir) {
		_, err := Install(context.Background(), InstallOptions{CacheDir: cfg.CacheDir, GPU: true, Progress: progress})
		if err != nil {
			return p, &ProviderError{Provider: p, Problem: "installing its provider libraries failed: " + err.Error(),
				Fix: "fix the install problem above, or copy them beside " + lib}
		}
		return p, nil
	}
	return p, &ProviderError{Provider: p,
		Problem: fmt.Sprintf("%s not found in %s (ORT loads provider libraries from the folder of %s)",
			strings.Join(missing, ", "), dir, filepath.Base(lib)),
		Fix: fmt.Sprintf("copy them there from Plugins/Linux/x64/ of the npm package %s, or use the cached library "+
			"(unset runtime.library and $%s) and run `mohawk setup --gpu` (runtime.Install with GPU)", GPUPackage.Spec, EnvORTLib)}
}

// probeProvider creates a one-node session on the provider, so that a
// provider library that does not load, or a missing device, is found now.
func probeProvider(cfg Config, lib, provider string) error {
	opts, err := newSessionOptions(cfg, provider, true)
	if err == nil {
		var s *ort.DynamicAdvancedSession
		s, err = ort.NewDynamicAdvancedSessionWithONNXData(probeModel(), []string{"x"}, []string{"y"}, opts)
		if err == nil {
			s.Destroy()
		}
		opts.Destroy()
	}
	if err == nil {
		return nil
	}
	problem := "ONNX Runtime: " + err.Error()
	// ORT's error may say only "Failed to load shared library" and log the
	// reason; ask the loader ourselves.
	names := []string{providersSharedLib, providerCUDALib}
	if provider == ProviderTensorRT {
		names = append(names, providerTRTLib)
	}
	for _, n := range names {
		path := filepath.Join(filepath.Dir(lib), n)
		derr := tryDlopen(path)
		if derr == nil {
			continue
		}
		fix := providerFix(provider)
		if !strings.HasPrefix(derr.Error(), path+":") {
			problem += "; loading " + path + ": " + derr.Error()
		} else {
			problem += "; loading " + derr.Error()
			// The file itself is broken, not one of its dependencies.
			fix = fmt.Sprintf("replace the provider libraries in %s with those of the npm package %s "+
				"(runtime.Install with GPU puts verified copies into the cache)", filepath.Dir(lib), GPUPackage.Spec)
		}
		return &ProviderError{Provider: provider, Problem: problem, Fix: fix}
	}
	return &ProviderError{Provider: provider, Problem: problem,
		Fix: "make sure a GPU is visible (nvidia-smi), the driver supports CUDA 13 and " + cfgDevice(cfg, provider) + " exists"}
}

func cfgDevice(cfg Config, provider string) string {
	if provider == ProviderTensorRT {
		return fmt.Sprintf("runtime.tensorrt.device_id %d", cfg.TensorRT.DeviceID)
	}
	return fmt.Sprintf("runtime.cuda.device_id %d", cfg.CUDA.DeviceID)
}

// newSessionOptions builds ORT session options from cfg for provider.
// strict forces session.disable_cpu_ep_fallback on a GPU provider.
func newSessionOptions(cfg Config, provider string, strict bool) (*ort.SessionOptions, error) {
	opts, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("create session options: %v", err)
	}
	if err := configureSessionOptions(opts, cfg, provider, strict); err != nil {
		opts.Destroy()
		return nil, err
	}
	return opts, nil
}

func configureSessionOptions(opts *ort.SessionOptions, cfg Config, provider string, strict bool) error {
	level := map[string]ort.GraphOptimizationLevel{
		"disable":  ort.GraphOptimizationLevelDisableAll,
		"basic":    ort.GraphOptimizationLevelEnableBasic,
		"extended": ort.GraphOptimizationLevelEnableExtended,
		"all":      ort.GraphOptimizationLevelEnableAll,
	}[cfg.OptimizationLevel]
	if err := opts.SetGraphOptimizationLevel(level); err != nil {
		return fmt.Errorf("set optimization level %s: %v", cfg.OptimizationLevel, err)
	}
	if err := opts.SetMemPattern(cfg.MemPattern); err != nil {
		return fmt.Errorf("set memory pattern %v: %v", cfg.MemPattern, err)
	}
	if n := cfg.CPU.IntraOpThreads; n > 0 {
		if err := opts.SetIntraOpNumThreads(n); err != nil {
			return fmt.Errorf("set intra-op threads %d: %v", n, err)
		}
	}
	if n := cfg.CPU.InterOpThreads; n > 0 {
		if err := opts.SetInterOpNumThreads(n); err != nil {
			return fmt.Errorf("set inter-op threads %d: %v", n, err)
		}
	}
	switch provider {
	case ProviderCPU:
		return nil
	case ProviderTensorRT:
		if err := appendTensorRT(opts, cfg.TensorRT); err != nil {
			return err
		}
		// Nodes TensorRT does not take run on CUDA rather than the CPU.
		cuda := cfg.CUDA
		cuda.DeviceID = cfg.TensorRT.DeviceID
		if err := appendCUDA(opts, cuda); err != nil {
			return err
		}
	case ProviderCUDA:
		if err := appendCUDA(opts, cfg.CUDA); err != nil {
			return err
		}
	}
	if cfg.DisableCPUFallback || strict {
		if err := opts.AddSessionConfigEntry("session.disable_cpu_ep_fallback", "1"); err != nil {
			return fmt.Errorf("disable CPU fallback: %v", err)
		}
	}
	return nil
}

// cudaOptions returns the CUDA provider options runtime passes to ORT.
func cudaOptions(c CUDAConfig) map[string]string {
	m := map[string]string{
		"device_id": strconv.Itoa(c.DeviceID),
		"use_tf32":  boolString(c.TF32),
	}
	if c.MemLimitBytes > 0 {
		m["gpu_mem_limit"] = strconv.FormatInt(c.MemLimitBytes, 10)
	}
	if v, ok := arenaExtends[c.ArenaExtend]; ok {
		m["arena_extend_strategy"] = v
	}
	return m
}

// tensorRTOptions returns the TensorRT provider options runtime passes to
// ORT.
func tensorRTOptions(c TensorRTConfig) map[string]string {
	m := map[string]string{
		"device_id":       strconv.Itoa(c.DeviceID),
		"trt_fp16_enable": boolString(c.FP16),
	}
	if c.WorkspaceBytes > 0 {
		m["trt_max_workspace_size"] = strconv.FormatInt(c.WorkspaceBytes, 10)
	}
	if c.CacheDir != "" {
		m["trt_engine_cache_enable"] = "1"
		m["trt_engine_cache_path"] = c.CacheDir
	}
	return m
}

func boolString(b bool) string {
	if b {
		return "1"
	}
	return "0"
}

func appendCUDA(opts *ort.SessionOptions, c CUDAConfig) error {
	po, err := ort.NewCUDAProviderOptions()
	if err != nil {
		return fmt.Errorf("create CUDA provider options: %v", err)
	}
	defer po.Destroy()
	if err := po.Update(cudaOptions(c)); err != nil {
		return fmt.Errorf("set CUDA provider options %v: %v", cudaOptions(c), err)
	}
	if err := opts.AppendExecutionProviderCUDA(po); err != nil {
		return fmt.Errorf("append CUDA provider: %v", err)
	}
	return nil
}

func appendTensorRT(opts *ort.SessionOptions, c TensorRTConfig) error {
	po, err := ort.NewTensorRTProviderOptions()
	if err != nil {
		return fmt.Errorf("create TensorRT provider options: %v", err)
	}
	defer po.Destroy()
	if err := po.Update(tensorRTOptions(c)); err != nil {
		return fmt.Errorf("set TensorRT provider options %v: %v", tensorRTOptions(c), err)
	}
	if err := opts.AppendExecutionProviderTensorRT(po); err != nil {
		return fmt.Errorf("append TensorRT provider: %v", err)
	}
	return nil
}

// probeModel is the ONNX model y = Identity(x), x and y float32[1].
func probeModel() []byte { return identityModel(1, true) }

// identityModel is the ONNX model y = Identity(x) for ONNX element type
// elem, with x and y of shape [1] or of any shape, written with the
// protobuf wire format directly (field numbers from onnx.proto).
func identityModel(elem uint64, shaped bool) []byte {
	msg := func(num protowire.Number, body []byte) []byte {
		return protowire.AppendBytes(protowire.AppendTag(nil, num, protowire.BytesType), body)
	}
	str := func(num protowire.Number, s string) []byte { return msg(num, []byte(s)) }
	varint := func(num protowire.Number, v uint64) []byte {
		return protowire.AppendVarint(protowire.AppendTag(nil, num, protowire.VarintType), v)
	}
	cat := func(parts ...[]byte) []byte {
		var b []byte
		for _, p := range parts {
			b = append(b, p...)
		}
		return b
	}
	valueInfo := func(name string) []byte {
		tensor := varint(fieldTensorElemType, elem)
		if shaped {
			tensor = cat(tensor, msg(fieldTensorShape, msg(fieldShapeDim, varint(fieldDimValue, 1))))
		}
		return cat(str(fieldValueInfoName, name), msg(fieldValueInfoType, msg(fieldTypeTensor, tensor)))
	}
	node := cat(str(1, "x"), str(2, "y"), str(4, "Identity")) // NodeProto input, output, op_type
	graph := cat(msg(1, node), str(2, "probe"), msg(fieldGraphInput, valueInfo("x")), msg(fieldGraphOutput, valueInfo("y")))
	opset := varint(2, 21) // OperatorSetIdProto.version, default domain
	return cat(varint(1, 10), msg(fieldModelGraph, graph), msg(8, opset))
}
