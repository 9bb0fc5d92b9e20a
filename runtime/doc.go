// Package runtime runs ONNX models with ONNX Runtime (ORT) 1.29.0. It is the
// only package of mohawk that imports github.com/yalue/onnxruntime_go (and
// so the only one that needs cgo and the ORT shared library).
//
// It knows nothing of models, graphs or stages: it takes ONNX model bytes
// (or a file path), the names of the inputs to feed and outputs to fetch,
// and host tensors (mohawk/tensors), and returns host tensors. Stages talk
// to it through small interfaces of their own, so their tests need no ORT.
//
// # Use
//
//	env, err := runtime.Open(cfg, os.Stderr) // once per process, Close at exit
//	s, err := env.NewSession("teacher-forward", modelBytes, []string{"input_ids"}, []string{"logits"})
//	outs, err := s.Run([]*tensors.Tensor{ids})
//
// # Library lookup
//
// Open and FindLibrary look for libonnxruntime.so in this order, the first
// one set winning (a set path that names no file is an error, not a reason
// to look further):
//
//  1. Config.Library (runtime.library in the pipeline YAML);
//  2. $ORT_LIB (exported by shared/tools/stage-ort-gpu.sh on the GPU machine);
//  3. $ONNXRUNTIME_SHARED_LIBRARY_PATH (onnxruntime_go's own convention);
//  4. <cache>/onnxruntime-1.29.0/libonnxruntime.so, where <cache> is
//     Config.CacheDir, else $XDG_CACHE_HOME/mohawk, else ~/.cache/mohawk.
//
// If none is found and Config.AutoInstall is on (the default), Open calls
// Install, which fetches the pinned npm packages with `npm pack`
// (onnxruntime-node@1.29.0 for the core; for CUDA/TensorRT also
// com.github.asus4.onnxruntime.linux-x64-gpu@0.4.9), checks the sha256 of
// each tarball and extracted file against CorePackage and GPUPackage, and
// moves the files into the cache atomically under a lock file. Provider
// libraries must sit in the core library's folder, because ORT loads them
// from there.
//
// After loading, Open checks that the library reports version 1.29.0.
//
// # Providers
//
// Config.Provider selects "cpu", "cuda" or "tensorrt" (TensorRT with CUDA
// behind it). Open checks a GPU provider before any session exists: the
// system CUDA libraries must load, the provider libraries must be beside the
// core library, and a one-node probe session must be created on the
// provider. If any step fails, Open returns a *ProviderError naming the
// provider, what failed to load and what to install. It falls back to the
// CPU only when Config.Fallback is "cpu", and then writes a warning line to
// the progress writer; Env.Provider tells which provider is in use.
// Config.DisableCPUFallback makes session creation fail when a node has no
// GPU kernel, instead of ORT quietly running that node on the CPU.
//
// # Sessions
//
// Inputs are checked before ORT sees them (count, dtype, rank and static
// dimensions against the model's declared inputs, each error naming the
// input) and handed to ORT without copying. ORT allocates outputs;
// onnxruntime_go copies them into Go memory once, which the returned tensors
// take over. onnxruntime_go v1.27.0 cannot wrap ORT-allocated 0-d outputs or
// float16/bfloat16 outputs, so those are pre-allocated: their shape must be
// static or use dimension names (dim_param) that also name an input
// dimension, which NewSession checks. Every ORT value is destroyed after
// each Run. A Session serves one goroutine at a time (Run locks it).
//
// # Resident values
//
// RunResident keeps chosen outputs where the provider computed them (GPU
// memory under cuda and tensorrt) as *Resident values that later runs take
// as inputs without a copy; Env.Fetch copies one to the host. This goes
// through a small cgo shim over ORT's I/O binding (ortapi.go), because
// onnxruntime_go v1.27.0 only binds host memory.
//
// # Arena statistics
//
// Session.ArenaStats reads the statistics of the memory arena the session
// allocates from in its provider's memory (GPU memory under cuda and
// tensorrt, host memory under cpu): bytes in use, their peak, the bytes
// the arena reserved from the device, allocations and extensions. Close
// reads them just before it destroys the session, and Env.ArenaStats lists
// them for every closed session, then reads the open ones. mohawk does not
// ask ORT to share arenas between sessions, so each session's figures are
// its own; the peak against the reserve tells fragmentation from tensors
// that are really live, which nvidia-smi cannot. An allocator
// that keeps none (an arena turned off) gives ErrNoArenaStats, not zeros.
// It goes through OrtApi's CreateAllocator and OrtAllocator's GetStats
// (ortapi.go).
//
// # Fused kernels
//
// Every session registers the custom-op domain FusedDomain ("mohawk.fused"):
// AdamW, AdamWInPlace, GeluGrad, CausalConv, CausalConvGrad, SegsumExp,
// SegsumExpGrad, MaskedDiffSq, MaskedDiffSqGrad, CausalSoftmax,
// SoftCrossEntropy, SoftCrossEntropyGrad, LayerNormGrad, SiluMul,
// SiluMulGrad, Residual and Rotary, each one kernel or a few (one per part
// for CausalConv's several outputs) where stock ONNX ops take five to
// forty whole-tensor passes, and AllReduce. They are C loops on
// the CPU provider and PTX kernels on the CUDA provider, compiled by the CUDA
// driver (libcuda.so.1, loaded on first use) and run on the provider's
// stream (fused.c; FusedDomain documents AdamW's arithmetic). They are
// generic numerics, not model code; graphs/train and the student's mixer
// use them in training graphs, never in exported files. A kernel that
// cannot run (no CUDA driver, an unsupported element type or shape) fails
// the session run with an error naming the op.
//
// # Data-parallel gradients
//
// The fused op AllReduce averages a tensor over the ranks of a
// data-parallel group: on the CUDA provider with ncclAllReduce on the
// provider's stream, over the communicator NCCLComm.Use registered; on the
// CPU over the HostReducer SetHostReducer registered (SingleRank for a
// world of one). NCCL is loaded with dlopen only when asked for (LoadNCCL;
// FindNCCL says where it looks), version-checked (MinNCCLVersion), and
// every call's result is checked and named (*NCCLError).
//
// # Errors
//
// Nothing here panics on purpose. Errors are lower-case, name what they are
// about and say what to do: session errors start with `session "<name>":
// create:` or `session "<name>": run:`; Open's start with "runtime:".
// Sentinels for errors.Is: ErrLibraryNotFound, ErrNPMNotFound,
// ErrVersionMismatch, ErrProviderUnavailable, ErrNCCLNotFound; *ChecksumError and
// *ProviderError carry details. When ORT rejects model bytes and
// $MOHAWK_SAVE_ON_FAILURE names a folder, the bytes are written there and
// the error gives the file.
//
// The package name shadows the standard library's runtime; files that need
// both import the latter as goruntime.
package runtime
