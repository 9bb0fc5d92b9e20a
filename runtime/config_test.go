package runtime

import (
	"reflect"
	"strings"
	"testing"
)

func TestDefaults(t *testing.T) {
	t.Parallel()
	d := Defaults()
	if err := d.Validate(); err != nil {
		t.Errorf("Defaults().Validate() = %v", err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Errorf("Config{}.Validate() = %v", err)
	}
	if got := (Config{}).withDefaults(); !reflect.DeepEqual(got, d) {
		t.Errorf("Config{}.withDefaults() = %+v, want %+v", got, d)
	}
	if !(Config{}).autoInstall() || !d.autoInstall() {
		t.Error("auto-install must default to on")
	}
	no := false
	if (Config{AutoInstall: &no}).autoInstall() {
		t.Error("auto_install: false ignored")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
		want []string // substrings; nil means valid
	}{
		{"cuda with fallback", Config{Provider: "cuda", Fallback: "cpu", CUDA: CUDAConfig{DeviceID: 1, TF32: true, MemLimitBytes: 1 << 30}}, nil},
		{"tensorrt", Config{Provider: "tensorrt", TensorRT: TensorRTConfig{FP16: true, WorkspaceBytes: 1 << 30, CacheDir: "/tmp/trt"}}, nil},
		{"levels", Config{OptimizationLevel: "disable", LogLevel: "verbose"}, nil},
		{"unknown provider", Config{Provider: "rocm"}, []string{`runtime.provider: "rocm" is not one of cpu, cuda, tensorrt`}},
		{"bad fallback", Config{Fallback: "gpu"}, []string{`runtime.fallback: "gpu"`}},
		{"bad level", Config{OptimizationLevel: "O3"}, []string{"runtime.optimization_level", "disable, basic, extended, all"}},
		{"bad log level", Config{LogLevel: "debug"}, []string{"runtime.log_level"}},
		{"bad arena strategy", Config{CUDA: CUDAConfig{ArenaExtend: "doubling"}},
			[]string{`runtime.cuda.arena_extend_strategy: "doubling" is not one of next_power_of_two, same_as_requested`}},
		{"every problem at once", Config{
			Provider: "x", CPU: CPUConfig{IntraOpThreads: -1, InterOpThreads: -2},
			CUDA: CUDAConfig{DeviceID: -1, MemLimitBytes: -5}, TensorRT: TensorRTConfig{DeviceID: -1, WorkspaceBytes: -1},
		}, []string{"runtime.provider", "runtime.cpu.intra_op_threads: -1 is negative", "runtime.cpu.inter_op_threads",
			"runtime.cuda.device_id", "runtime.cuda.mem_limit_bytes", "runtime.tensorrt.device_id", "runtime.tensorrt.workspace_bytes"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			err := c.cfg.Validate()
			if c.want == nil {
				if err != nil {
					t.Errorf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate() = nil, want an error")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestMapstructureTags(t *testing.T) {
	t.Parallel()
	// Every field has a snake_case mapstructure tag, so the pipeline's YAML
	// decoder (with ErrorUnused) maps runtime.* keys onto it.
	var check func(rt reflect.Type)
	check = func(rt reflect.Type) {
		for i := 0; i < rt.NumField(); i++ {
			f := rt.Field(i)
			tag := f.Tag.Get("mapstructure")
			if tag == "" || strings.ToLower(tag) != tag || strings.Contains(tag, "-") {
				t.Errorf("%s.%s: mapstructure tag %q is not snake_case", rt.Name(), f.Name, tag)
			}
			if f.Type.Kind() == reflect.Struct {
				check(f.Type)
			}
		}
	}
	check(reflect.TypeOf(Config{}))
}

func TestProviderOptions(t *testing.T) {
	t.Parallel()
	got := cudaOptions(CUDAConfig{DeviceID: 2, TF32: true, MemLimitBytes: 8 << 30, ArenaExtend: "same_as_requested"})
	want := map[string]string{"device_id": "2", "use_tf32": "1", "gpu_mem_limit": "8589934592", "arena_extend_strategy": "kSameAsRequested"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("cudaOptions = %v, want %v", got, want)
	}
	if got := cudaOptions(CUDAConfig{}); !reflect.DeepEqual(got, map[string]string{"device_id": "0", "use_tf32": "0"}) {
		t.Errorf("cudaOptions(zero) = %v", got)
	}
	got = tensorRTOptions(TensorRTConfig{DeviceID: 1, FP16: true, WorkspaceBytes: 1 << 30, CacheDir: "/c"})
	want = map[string]string{"device_id": "1", "trt_fp16_enable": "1", "trt_max_workspace_size": "1073741824",
		"trt_engine_cache_enable": "1", "trt_engine_cache_path": "/c"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("tensorRTOptions = %v, want %v", got, want)
	}
}
