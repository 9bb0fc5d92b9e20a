package runtime

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"mohawk/tensors"
)

// hasCUDA reports whether this machine could run the CUDA provider at all.
func hasCUDA() bool {
	for _, n := range cudaSystemLibs {
		if tryDlopen(n) != nil {
			return false
		}
	}
	return true
}

func TestGPUProviderUnavailable(t *testing.T) {
	needORT(t)
	if hasCUDA() {
		t.Skip("this machine has the CUDA libraries; the unavailable-provider errors cannot be provoked here")
	}
	no := false
	for _, p := range []string{ProviderCUDA, ProviderTensorRT} {
		t.Run(p+" without fallback", func(t *testing.T) {
			var progress bytes.Buffer
			env, err := Open(Config{Provider: p, AutoInstall: &no}, &progress)
			if err == nil {
				env.Close()
				t.Fatal("Open succeeded; want an error and no silent CPU fallback")
			}
			if !errors.Is(err, ErrProviderUnavailable) {
				t.Errorf("error %v is not ErrProviderUnavailable", err)
			}
			for _, w := range []string{p + " execution provider unavailable", "the dynamic loader cannot load",
				"cannot open shared object file", "libcudart.so.13", "LD_LIBRARY_PATH", "runtime.fallback: cpu"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q\ndoes not contain %q", err, w)
				}
			}
			if p == ProviderTensorRT && !strings.Contains(err.Error(), "libnvinfer.so.10") {
				t.Errorf("error %q does not name TensorRT's library", err)
			}
			if strings.Contains(progress.String(), "warning") {
				t.Errorf("a warning was printed although Open failed: %s", progress.String())
			}
			t.Logf("message: %v", err)
		})
		t.Run(p+" with fallback cpu", func(t *testing.T) {
			var progress bytes.Buffer
			env, err := Open(Config{Provider: p, Fallback: ProviderCPU, AutoInstall: &no}, &progress)
			if err != nil {
				t.Fatal(err)
			}
			defer env.Close()
			if env.Provider() != ProviderCPU {
				t.Errorf("Provider() = %q, want cpu", env.Provider())
			}
			if w := "warning: runtime: " + p + " execution provider unavailable"; !strings.Contains(progress.String(), w) ||
				!strings.Contains(progress.String(), "continuing on the CPU") {
				t.Errorf("progress %q does not contain the warning %q", progress.String(), w)
			}
			s, err := env.NewSession("fallback", addModel(t), []string{"a", "b"}, []string{"c"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			x := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
			if _, err := s.Run([]*tensors.Tensor{x, x}); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestPrepareProviderFiles(t *testing.T) {
	// Pretend the system libraries are there to reach the provider-file check.
	saved := cudaSystemLibs
	cudaSystemLibs = nil
	t.Cleanup(func() { cudaSystemLibs = saved })
	no := false

	dir := t.TempDir()
	lib := touch(t, filepath.Join(dir, LibraryName))
	_, err := prepareProvider(Config{Provider: ProviderCUDA, AutoInstall: &no}, lib, nil)
	var pe *ProviderError
	if !errors.As(err, &pe) {
		t.Fatalf("prepareProvider = %v, want a ProviderError", err)
	}
	for _, w := range []string{providersSharedLib + ", " + providerCUDALib + " not found in " + dir,
		"from the folder of " + LibraryName, GPUPackage.Spec, "mohawk setup --gpu"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	touch(t, filepath.Join(dir, providersSharedLib))
	touch(t, filepath.Join(dir, providerCUDALib))
	if p, err := prepareProvider(Config{Provider: ProviderCUDA, AutoInstall: &no}, lib, nil); err != nil || p != ProviderCUDA {
		t.Errorf("with the files present: %q, %v", p, err)
	}
	if p, err := prepareProvider(Config{}, lib, nil); err != nil || p != ProviderCPU {
		t.Errorf("cpu: %q, %v", p, err)
	}
}

// TestProviderLoadFailure runs a child test process whose ORT library sits
// in a folder with unloadable provider libraries, to check the message for
// a provider ORT fails to load (ORT's own error says only "Failed to load
// shared library").
func TestProviderLoadFailure(t *testing.T) {
	env := needORT(t)
	dir := t.TempDir()
	if err := os.Symlink(env.Library(), filepath.Join(dir, LibraryName)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{providersSharedLib, providerCUDALib} {
		if err := os.WriteFile(filepath.Join(dir, n), []byte("not an ELF file"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	runChild(t, "TestChildProviderLoadFailure", filepath.Join(dir, LibraryName))
}

// runChild runs the test named test in a new process of this test binary
// with $MOHAWK_RUNTIME_TEST_CHILD=value, where no ORT library is loaded yet,
// and fails t unless it passes.
func runChild(t *testing.T, test, value string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^"+test+"$", "-test.v")
	cmd.Env = append(os.Environ(), childEnv+"="+value)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: "+test) {
		t.Fatalf("child process: %v\n%s", err, out)
	}
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "message: ") {
			t.Log(strings.TrimSpace(line))
		}
	}
}

// childEnv is set in child test processes: to the library to use, or "1".
const childEnv = "MOHAWK_RUNTIME_TEST_CHILD"

func TestChildProviderLoadFailure(t *testing.T) {
	lib := os.Getenv(childEnv)
	if lib == "" {
		t.Skip("runs only as the child process of TestProviderLoadFailure")
	}
	saved := cudaSystemLibs
	cudaSystemLibs = nil // reach ORT's own loading of the provider
	t.Cleanup(func() { cudaSystemLibs = saved })
	no := false
	_, err := Open(Config{Library: lib, Provider: ProviderCUDA, AutoInstall: &no, LogLevel: "fatal"}, nil)
	if !errors.Is(err, ErrProviderUnavailable) {
		t.Fatalf("Open = %v, want ErrProviderUnavailable", err)
	}
	for _, w := range []string{"cuda execution provider unavailable", "ONNX Runtime:",
		"loading " + filepath.Join(filepath.Dir(lib), providersSharedLib) + ": file too short",
		"replace the provider libraries in " + filepath.Dir(lib), GPUPackage.Spec, "runtime.fallback: cpu"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q\ndoes not contain %q", err, w)
		}
	}
	t.Logf("message: %v", err)
	// The failed Open released ORT; a CPU Open works, and so does the
	// fallback.
	var progress bytes.Buffer
	env, err := Open(Config{Library: lib, Provider: ProviderCUDA, Fallback: ProviderCPU, AutoInstall: &no, LogLevel: "fatal"}, &progress)
	if err != nil {
		t.Fatal(err)
	}
	defer env.Close()
	if env.Provider() != ProviderCPU || !strings.Contains(progress.String(), "warning: runtime: cuda execution provider unavailable") {
		t.Errorf("Provider %q, progress %q", env.Provider(), progress.String())
	}
	s, err := env.NewSession("after fallback", addModel(t), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// TestCUDARun runs on a GPU machine only (MOHAWK_TEST_CUDA=1): the CUDA
// provider, with CPU fallback disabled, must give the CPU's results.
func TestCUDARun(t *testing.T) {
	needORT(t)
	if os.Getenv("MOHAWK_TEST_CUDA") != "1" {
		t.Skip("set MOHAWK_TEST_CUDA=1 on a machine with CUDA 13 and the provider libraries beside the ORT library")
	}
	var progress bytes.Buffer
	start := time.Now()
	env, err := Open(Config{Provider: ProviderCUDA, DisableCPUFallback: true}, &progress)
	if err != nil {
		t.Fatalf("Open cuda: %v\n%s", err, progress.String())
	}
	defer env.Close()
	t.Logf("Open with the CUDA provider (probe session included) took %v", time.Since(start))
	if env.Provider() != ProviderCUDA {
		t.Fatalf("Provider() = %q", env.Provider())
	}
	model := binaryModel(t, "MatMul", tensors.Float32, []any{"m", "k"}, []any{"k", "n"}, []any{"m", "n"})
	a := tensors.Zeros(tensors.Float32, 64, 128)
	b := tensors.Zeros(tensors.Float32, 128, 32)
	for i := range a.Float32s() {
		a.Float32s()[i] = float32(i%7) - 3
	}
	for i := range b.Float32s() {
		b.Float32s()[i] = float32(i%5) - 2
	}
	var results [][]float32
	for _, e := range []*Env{testEnv, env} {
		s, err := e.NewSession("matmul-"+e.Provider(), model, []string{"a", "b"}, []string{"c"})
		if err != nil {
			t.Fatal(err)
		}
		out, err := s.Run([]*tensors.Tensor{a, b})
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		results = append(results, out[0].Float32s())
	}
	for i := range results[0] {
		if results[0][i] != results[1][i] { // small integers: exact on both
			t.Fatalf("element %d: cpu %v, cuda %v", i, results[0][i], results[1][i])
		}
	}
	// A 0-d output and float16 outputs on CUDA too.
	s, err := env.NewSession("sum", reduceSumModel(t, tensors.Float32, nil), []string{"x"}, []string{"s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	out, err := s.Run([]*tensors.Tensor{tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})})
	if err != nil || out[0].Float32s()[0] != 21 {
		t.Errorf("ReduceSum on CUDA = %v, %v", out, err)
	}
	// Float16 with a pre-allocated output, on CUDA.
	h, err := env.NewSession("half", binaryModel(t, "Add", tensors.Float16, []any{"n"}, []any{"n"}, []any{"n"}), []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	x := tensors.FromFloat32([]int64{3}, []float32{1, 2, 3}).Convert(tensors.Float16)
	out, err = h.Run([]*tensors.Tensor{x, x})
	if err != nil || !slices.Equal(out[0].AsFloat32().Float32s(), []float32{2, 4, 6}) {
		t.Errorf("float16 Add on CUDA = %v, %v", out, err)
	}
	t.Logf("CUDA provider ran; progress: %q", progress.String())

	// TensorRT: report what happens on this machine (it may lack TensorRT).
	var trtProgress bytes.Buffer
	trt, err := Open(Config{Provider: ProviderTensorRT, Fallback: ProviderCPU}, &trtProgress)
	if err != nil {
		t.Fatalf("Open tensorrt with fallback: %v", err)
	}
	t.Logf("tensorrt: provider in use %q; progress: %s", trt.Provider(), trtProgress.String())
	trt.Close()
}
