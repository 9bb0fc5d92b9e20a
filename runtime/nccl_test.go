package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// TestFindNCCL runs the library search over a fake file system root and
// environment: each source is found where it should be, in order, and a
// search that finds nothing says where it looked and how to install NCCL.
func TestFindNCCL(t *testing.T) {
	const wheel = "nvidia/nccl/lib/" + NCCLLibraryName
	for _, c := range []struct {
		name    string
		files   []string          // created under the root
		env     map[string]string // $ROOT in a value is the root
		loader  bool              // the dynamic loader finds libnccl.so.2
		want    string            // the path found ($ROOT-relative), or
		wantErr []string          // the error's parts
	}{
		{name: "nothing", wantErr: []string{ErrNCCLNotFound.Error(), "$NCCL_LIB is unset", "pip install nvidia-nccl-cu13",
			"$ROOT/usr/local/cuda-*/targets/x86_64-linux/lib/" + NCCLLibraryName,
			"$ROOT/usr/local/lib/python3*/dist-packages/" + wheel, "$ROOT/usr/lib/python3*/site-packages/" + wheel}},
		{name: "NCCL_LIB", files: []string{"opt/nccl.so"}, env: map[string]string{"NCCL_LIB": "$ROOT/opt/nccl.so"},
			loader: true, want: "$ROOT/opt/nccl.so"},
		{name: "NCCL_LIB missing", env: map[string]string{"NCCL_LIB": "$ROOT/opt/nccl.so"}, loader: true,
			wantErr: []string{`$NCCL_LIB is "$ROOT/opt/nccl.so"`, "no such file"}},
		{name: "NCCL_LIB folder", files: []string{"opt/x"}, env: map[string]string{"NCCL_LIB": "$ROOT/opt"},
			wantErr: []string{"a folder"}},
		{name: "loader", files: []string{"usr/local/lib/python3.12/dist-packages/" + wheel}, loader: true,
			want: NCCLLibraryName},
		{name: "CUDA install", files: []string{"usr/local/cuda-13.0/targets/x86_64-linux/lib/" + NCCLLibraryName,
			"usr/local/lib/python3.12/dist-packages/" + wheel}, want: "$ROOT/usr/local/cuda-13.0/targets/x86_64-linux/lib/" + NCCLLibraryName},
		{name: "system wheel", files: []string{"usr/local/lib/python3.12/dist-packages/" + wheel},
			want: "$ROOT/usr/local/lib/python3.12/dist-packages/" + wheel},
		{name: "virtualenv first", files: []string{"venv/lib/python3.11/site-packages/" + wheel,
			"usr/lib/python3/dist-packages/" + wheel}, env: map[string]string{"VIRTUAL_ENV": "$ROOT/venv"},
			want: "$ROOT/venv/lib/python3.11/site-packages/" + wheel},
		{name: "user site", files: []string{"home/u/.local/lib/python3.12/site-packages/" + wheel},
			env: map[string]string{"HOME": "$ROOT/home/u"}, want: "$ROOT/home/u/.local/lib/python3.12/site-packages/" + wheel},
		{name: "PYTHONPATH", files: []string{"pp/" + wheel}, env: map[string]string{"PYTHONPATH": "$ROOT/nope:$ROOT/pp"},
			want: "$ROOT/pp/" + wheel},
	} {
		t.Run(c.name, func(t *testing.T) {
			root := t.TempDir()
			for _, f := range c.files {
				p := filepath.Join(root, f)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			s := ncclSearch{
				getenv: func(k string) string { return strings.ReplaceAll(c.env[k], "$ROOT", root) },
				root:   root,
				loadable: func(name string) error {
					if c.loader && name == NCCLLibraryName {
						return nil
					}
					return fmt.Errorf("%s: cannot open shared object file", name)
				},
			}
			got, err := s.find()
			if c.wantErr != nil {
				if err == nil {
					t.Fatalf("found %s, want an error", got)
				}
				for _, w := range c.wantErr {
					if w = strings.ReplaceAll(w, "$ROOT", root); !strings.Contains(err.Error(), w) {
						t.Errorf("error %q lacks %q", err, w)
					}
				}
				if c.name == "nothing" && !errors.Is(err, ErrNCCLNotFound) {
					t.Errorf("error %v is not ErrNCCLNotFound", err)
				}
				return
			}
			if want := strings.ReplaceAll(c.want, "$ROOT", root); err != nil || got != want {
				t.Fatalf("find = %q, %v; want %q", got, err, want)
			}
		})
	}
}

// fakeNCCL is a stand-in for libnccl.so.2 with the entry points mohawk
// uses; VERSION and UID_RC are set per build, and NO_DESTROY leaves
// ncclCommDestroy out.
const fakeNCCL = `
#include <string.h>
typedef struct { char internal[128]; } id_t_;
int ncclGetVersion(int *v) { *v = VERSION; return 0; }
const char *ncclGetErrorString(int rc) { return rc == 5 ? "fake: invalid usage" : "fake: other"; }
int ncclGetUniqueId(id_t_ *id) { memset(id->internal, 7, 128); return UID_RC; }
int ncclCommInitRank(void **c, int n, id_t_ id, int r) { return 0; }
int ncclAllReduce(const void *s, void *r, unsigned long n, int t, int op, void *c, void *st) { return 0; }
int ncclCommGetAsyncError(void *c, int *e) { *e = 0; return 0; }
int ncclCommAbort(void *c) { return 0; }
#ifndef NO_DESTROY
int ncclCommDestroy(void *c) { return 0; }
#endif
`

// buildFakeNCCL compiles fakeNCCL with the C compiler cgo uses into a
// shared library under dir.
func buildFakeNCCL(t *testing.T, dir, name string, defs ...string) string {
	t.Helper()
	src := filepath.Join(dir, "fake.c")
	if err := os.WriteFile(src, []byte(fakeNCCL), 0o644); err != nil {
		t.Fatal(err)
	}
	cc := os.Getenv("CC")
	if cc == "" {
		cc = "cc"
	}
	out := filepath.Join(dir, name)
	args := append([]string{"-shared", "-fPIC", "-o", out, src}, defs...)
	if b, err := exec.Command(cc, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", cc, strings.Join(args, " "), err, b)
	}
	return out
}

// TestOpenNCCL loads fake NCCL libraries: a recent one loads and its
// unique id comes back; an old one, one without a symbol and a missing
// file are refused with errors that say why and how to install NCCL; a
// failing call is named with NCCL's result name, code and text.
func TestOpenNCCL(t *testing.T) {
	dir := t.TempDir()
	good := buildFakeNCCL(t, dir, "good.so", "-DVERSION=22803", "-DUID_RC=0")
	n, err := OpenNCCL(good)
	if err != nil {
		t.Fatal(err)
	}
	if n.Version() != "2.28.3" || n.Path() != good {
		t.Errorf("version %s, path %s; want 2.28.3, %s", n.Version(), n.Path(), good)
	}
	id, err := n.UniqueID()
	if err != nil || id[0] != 7 || id[127] != 7 {
		t.Errorf("UniqueID = %v…, %v; want 128 bytes of 7", id[:4], err)
	}
	if back, err := ParseNCCLID(id[:]); err != nil || back != id {
		t.Errorf("ParseNCCLID(id) = %v…, %v", back[:4], err)
	}
	if _, err := ParseNCCLID(id[:100]); err == nil || !strings.Contains(err.Error(), "100 bytes; want 128") {
		t.Errorf("ParseNCCLID(100 bytes) = %v", err)
	}
	if again, err := OpenNCCL(good); err != nil || again != n {
		t.Errorf("second OpenNCCL = %p, %v; want the first, %p", again, err, n)
	}

	badID := buildFakeNCCL(t, dir, "badid.so", "-DVERSION=21800", "-DUID_RC=5")
	n2, err := OpenNCCL(badID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = n2.UniqueID()
	var ne *NCCLError
	if !errors.As(err, &ne) || ne.Code != 5 || err.Error() != "ncclGetUniqueId: ncclInvalidUsage (5): fake: invalid usage" {
		t.Errorf("UniqueID error = %v", err)
	}

	for _, c := range []struct {
		name string
		defs []string
		want []string
	}{
		{"old", []string{"-DVERSION=21702", "-DUID_RC=0"}, []string{"version 2.17.2; mohawk needs 2.18.0 or newer", "pip install nvidia-nccl-cu13"}},
		{"no destroy", []string{"-DVERSION=22803", "-DUID_RC=0", "-DNO_DESTROY"}, []string{"has no symbol ncclCommDestroy", "pip install nvidia-nccl-cu13"}},
		{"missing", nil, []string{"missing.so", "pip install nvidia-nccl-cu13"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			path := filepath.Join(dir, "missing.so")
			if c.defs != nil {
				path = buildFakeNCCL(t, dir, c.name+".so", c.defs...)
			}
			_, err := OpenNCCL(path)
			for _, w := range c.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("OpenNCCL(%s) = %v; want an error containing %q", path, err, w)
				}
			}
		})
	}
}

// TestNCCLCommNeedsCUDA: without the CUDA runtime (CI), making a
// communicator fails with an error naming the device and the library.
func TestNCCLCommNeedsCUDA(t *testing.T) {
	if tryDlopen("libcudart.so.13") == nil {
		t.Skip("the CUDA runtime is installed; this checks the error without it")
	}
	n, err := OpenNCCL(buildFakeNCCL(t, t.TempDir(), "good.so", "-DVERSION=22803", "-DUID_RC=0"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = n.NewComm(NCCLID{}, 0, 1, 0)
	if err == nil || !strings.Contains(err.Error(), "CUDA device 0: cannot load the CUDA runtime: libcudart.so.13") {
		t.Fatalf("NewComm = %v; want the CUDA runtime's absence named", err)
	}
	if _, err := n.NewComm(NCCLID{}, 2, 2, 0); err == nil || !strings.Contains(err.Error(), "rank 2 of 2 ranks") {
		t.Fatalf("NewComm(rank 2 of 2) = %v", err)
	}
}

// allReduceModel is y = AllReduce(x) for x of element type dt and any
// shape.
func allReduceModel(t *testing.T, dt tensors.DType) []byte {
	t.Helper()
	n := node("AllReduce", []string{"x"}, []string{"y"})
	n.Domain = FusedDomain
	m := &pb.ModelProto{
		IrVersion:    10,
		ProducerName: "mohawk-runtime-test",
		OpsetImport:  []*pb.OperatorSetIdProto{{Version: 21}, {Domain: FusedDomain, Version: 1}},
		Graph: &pb.GraphProto{Name: "allreduce", Node: []*pb.NodeProto{n},
			Input: []*pb.ValueInfoProto{vi("x", dt, "n")}, Output: []*pb.ValueInfoProto{vi("y", dt, "n")}},
	}
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// otherRanks is a HostReducer that stands for a group where the other
// ranks hold x + k for k = 1 … ranks−1 (so the mean is x + (ranks−1)/2),
// or fails with err.
type otherRanks struct {
	ranks int
	err   error
	calls int
}

func (o *otherRanks) Size() int { return o.ranks }

func (o *otherRanks) AllReduce(_ context.Context, x []float32) error {
	o.calls++
	if o.err != nil {
		return o.err
	}
	for i := range x {
		s := x[i]
		for k := 1; k < o.ranks; k++ {
			s += x[i] + float32(k)
		}
		x[i] = s
	}
	return nil
}

// TestAllReduceHost runs the AllReduce op's CPU kernel: with SingleRank it
// returns its input bit for bit (NaN, ±Inf, −0 and subnormals included);
// with a group of four it returns the mean, computed here independently
// (float64 is refused there, as the reducer sums float32); without a
// reducer, or with a failing one, the run fails and says why.
func TestAllReduceHost(t *testing.T) {
	env := needORT(t)
	t.Cleanup(func() { SetHostReducer(nil) })
	special := []float64{0, math.Copysign(0, -1), 1, -2.5, 1e-40, -3e-39, 3.4e38, math.Inf(1), math.Inf(-1), math.NaN(), 0.1, 7}
	for _, dt := range []tensors.DType{tensors.Float32, tensors.Float64, tensors.BFloat16} {
		t.Run(dt.String(), func(t *testing.T) {
			s, err := env.NewSession("allreduce", allReduceModel(t, dt), []string{"x"}, []string{"y"})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			x := tensors.FromFloat64([]int64{int64(len(special))}, special).Convert(dt)

			SetHostReducer(SingleRank{})
			out, err := s.Run([]*tensors.Tensor{x})
			if err != nil {
				t.Fatal(err)
			}
			if string(out[0].Data) != string(x.Data) {
				t.Fatalf("one rank: got %v, want the input %v bit for bit", out[0].Convert(tensors.Float64).Float64s(),
					x.Convert(tensors.Float64).Float64s())
			}

			four := &otherRanks{ranks: 4}
			SetHostReducer(four)
			small := tensors.FromFloat64([]int64{5}, []float64{0, 1, -2, 0.5, 100}).Convert(dt)
			out, err = s.Run([]*tensors.Tensor{small})
			if dt == tensors.Float64 {
				if err == nil || !strings.Contains(err.Error(), "AllReduce: float64 over 4 ranks") || four.calls != 0 {
					t.Errorf("float64 over four ranks: %v, %d calls; want an error and none", err, four.calls)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, in := out[0].Convert(tensors.Float64).Float64s(), small.Convert(tensors.Float64).Float64s()
			for i := range in {
				// Exact in every dtype: the inputs plus 1.5 are representable.
				if want := in[i] + 1.5; !(got[i] == want) {
					t.Errorf("four ranks: element %d is %v, want %v", i, got[i], want)
				}
			}
			if four.calls != 1 {
				t.Errorf("the reducer was called %d times, want once", four.calls)
			}

			SetHostReducer(&otherRanks{ranks: 2, err: errors.New("peer 1 went away")})
			if _, err := s.Run([]*tensors.Tensor{small}); err == nil || !strings.Contains(err.Error(),
				"AllReduce: host all-reduce of 5 elements: peer 1 went away") {
				t.Errorf("failing reducer: %v", err)
			}
			SetHostReducer(nil)
			if _, err := s.Run([]*tensors.Tensor{small}); err == nil || !strings.Contains(err.Error(),
				"AllReduce: no host reducer is registered") {
				t.Errorf("no reducer: %v", err)
			}
		})
	}
}
