package runtime

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	pb "mohawk/export/onnxpb"
	"mohawk/internal/strict"
	"mohawk/tensors"
)

// ortHeader is the C API header that ships with onnxruntime_go (the test
// is skipped where its sources cannot be found, failed in strict mode).
func ortHeader(t *testing.T) []byte {
	t.Helper()
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", "github.com/yalue/onnxruntime_go").Output()
	if err != nil {
		strict.Unavailable(t, "cannot locate onnxruntime_go's sources: %v", err)
	}
	header, err := os.ReadFile(filepath.Join(strings.TrimSpace(string(out)), "onnxruntime_c_api.h"))
	if err != nil {
		t.Fatal(err)
	}
	return header
}

// TestOrtAPIIndices checks the shim's OrtApi table indices (the enum in
// ortapi.go) against the C API header that ships with onnxruntime_go.
func TestOrtAPIIndices(t *testing.T) {
	header := ortHeader(t)
	h := regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(string(header), "")
	h = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(h, "")
	i := strings.Index(h, "struct OrtApi {")
	j := strings.Index(h[i:], "\n};")
	if i < 0 || j < 0 {
		t.Fatal("no struct OrtApi in the header")
	}
	index := map[string]int{}
	status := regexp.MustCompile(`^ORT_API2_STATUS\(\s*(\w+)`)
	release := regexp.MustCompile(`^ORT_CLASS_RELEASE2?\(\s*(\w+)\)`)
	typed := regexp.MustCompile(`^ORT_API_T\([^,]+,\s*(\w+)`)
	plain := regexp.MustCompile(`ORT_API_CALL\s*\*\s*(\w+)\s*\)`)
	n := 0
	for _, m := range strings.Split(h[i+len("struct OrtApi {"):i+j], ";") {
		m = strings.TrimSpace(m)
		if m == "" {
			continue
		}
		switch {
		case status.MatchString(m):
			index[status.FindStringSubmatch(m)[1]] = n
		case release.MatchString(m):
			index["Release"+release.FindStringSubmatch(m)[1]] = n
		case typed.MatchString(m):
			index[typed.FindStringSubmatch(m)[1]] = n
		case plain.MatchString(m):
			index[plain.FindStringSubmatch(m)[1]] = n
		default:
			t.Fatalf("member %d not understood: %.80s", n, m)
		}
		n++
	}
	if index["CreateStatus"] != 0 || index["GetErrorMessage"] != 2 {
		t.Fatalf("header parse is off: CreateStatus %d, GetErrorMessage %d", index["CreateStatus"], index["GetErrorMessage"])
	}
	version := regexp.MustCompile(`#define ORT_API_VERSION (\d+)`).FindStringSubmatch(string(header))

	var entries [][]string
	for _, file := range []string{"ortapi.go", "fused.c"} {
		src, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		found := regexp.MustCompile(`\tmh(\w+) = (\d+),`).FindAllStringSubmatch(string(src), -1)
		if len(found) < 15 {
			t.Fatalf("found only %d OrtApi indices in %s", len(found), file)
		}
		entries = append(entries, found...)
	}
	if version == nil || version[1] != strconv.Itoa(ortAPIVersion) {
		t.Errorf("MH_ORT_API_VERSION (fused.h) = %d, the header's ORT_API_VERSION is %v", ortAPIVersion, version)
	}
	for _, e := range entries {
		got, _ := strconv.Atoi(e[2])
		want, ok := index[e[1]]
		if !ok {
			t.Errorf("OrtApi has no member %s", e[1])
		} else if got != want {
			t.Errorf("mh%s = %d, OrtApi member index %d", e[1], got, want)
		}
	}
}

// TestCustomOpLayout checks fused.c's copy of struct OrtCustomOp against
// the header: the same members in the same order (all are pointers but the
// leading uint32 version, so equal order is equal layout).
func TestCustomOpLayout(t *testing.T) {
	header := ortHeader(t)
	src, err := os.ReadFile("fused.c")
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"version"}, structMembers(t, string(header), "struct OrtCustomOp {", regexp.MustCompile(`ORT_API_CALL\s*\*\s*(\w+)\)`))...)
	got := append([]string{"version"}, structMembers(t, string(src), "typedef struct mh_custom_op {", regexp.MustCompile(`\(\*(\w+)\)\(`))...)
	if len(want) < 20 || strings.Join(got, " ") != strings.Join(want, " ") {
		t.Errorf("fused.c's OrtCustomOp members\n%v\nthe header's\n%v", got, want)
	}
}

// structMembers lists the members of the C struct that starts at start in
// text, comments removed: for each match of member, its first non-empty
// group.
func structMembers(t *testing.T, text, start string, member *regexp.Regexp) []string {
	t.Helper()
	i := strings.Index(text, start)
	if i < 0 {
		t.Fatalf("no %q", start)
	}
	body := text[i : i+strings.Index(text[i:], "\n}")]
	body = regexp.MustCompile(`(?s)/\*.*?\*/`).ReplaceAllString(body, "")
	body = regexp.MustCompile(`//[^\n]*`).ReplaceAllString(body, "")
	var names []string
	for _, m := range member.FindAllStringSubmatch(body, -1) {
		for _, g := range m[1:] {
			if g != "" {
				names = append(names, g)
				break
			}
		}
	}
	return names
}

// matMulSum opens a session of c = a·b, s = Σc with a [m, 3] and b [3, 3].
func matMulSum(t *testing.T, env *Env, name string) *Session {
	t.Helper()
	model := modelBytes(t,
		[]*pb.NodeProto{node("MatMul", []string{"a", "b"}, []string{"c"}), node("ReduceSum", []string{"c"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, "m", 3), vi("b", tensors.Float32, 3, 3)},
		[]*pb.ValueInfoProto{vi("c", tensors.Float32, "m", 3), vi("s", tensors.Float32)})
	s, err := env.NewSession(name, model, []string{"a", "b"}, []string{"c", "s"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestRunResident(t *testing.T) {
	env := needORT(t)
	s := matMulSum(t, env, "resident")
	a := tensors.FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	b := tensors.FromFloat32([]int64{3, 3}, []float32{0.5, 1, 0, -1, 2, 1, 0, 0.25, 3})

	// Three chained products c ← c·b with c kept resident, against Run.
	want := a
	var cur *Resident
	for i := 0; i < 3; i++ {
		out, err := s.Run([]*tensors.Tensor{want, b})
		if err != nil {
			t.Fatal(err)
		}
		feed := Feed{Host: a}
		if cur != nil {
			feed = Feed{Resident: cur}
		}
		host, dev, err := s.RunResident([]Feed{feed, {Host: b}}, []bool{true, false})
		if err != nil {
			t.Fatal(err)
		}
		if host[0] != nil || dev[1] != nil || dev[0] == nil || host[1] == nil {
			t.Fatalf("run %d: kept/host outputs mixed up: host %v dev %v", i, host, dev)
		}
		if got := host[1].Float32s()[0]; got != out[1].Float32s()[0] {
			t.Errorf("run %d: sum %v, Run gives %v", i, got, out[1].Float32s()[0])
		}
		if dev[0].DType != tensors.Float32 || len(dev[0].Shape) != 2 || dev[0].Shape[0] != 2 || dev[0].Bytes() != 24 {
			t.Errorf("run %d: resident is %v %v", i, dev[0].DType, dev[0].Shape)
		}
		cur.Release()
		cur, want = dev[0], out[0]
	}
	got, err := env.Fetch(cur)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got.Float32s(), want.Float32s()) || len(got.Shape) != 2 {
		t.Errorf("fetched %v %v, Run gives %v", got.Shape, got.Float32s(), want.Float32s())
	}

	// Bad inputs are errors naming the input.
	host, _, err := s.RunResident([]Feed{{Resident: cur}, {Resident: cur}}, []bool{false, false})
	if err == nil || !strings.Contains(err.Error(), `input "b"`) {
		t.Errorf("a [2,3] resident fed as b [3,3]: %v %v", host, err)
	}
	cur.Release()
	cur.Release() // idempotent
	if _, _, err := s.RunResident([]Feed{{Resident: cur}, {Host: b}}, []bool{false, false}); err == nil || !strings.Contains(err.Error(), "released") {
		t.Errorf("released resident: %v", err)
	}
	if _, err := env.Fetch(cur); err == nil {
		t.Error("fetching a released resident succeeded")
	}
	if _, _, err := s.RunResident([]Feed{{Host: a}}, []bool{false}); err == nil || !strings.Contains(err.Error(), "want 2") {
		t.Errorf("wrong arity: %v", err)
	}
}

// TestHostTraffic checks Env.HostTraffic's accounting: host inputs and
// host outputs count their bytes, resident ones nothing.
func TestHostTraffic(t *testing.T) {
	env := needORT(t)
	s := matMulSum(t, env, "traffic")
	a := tensors.Zeros(tensors.Float32, 2, 3) // 24 bytes
	b := tensors.Zeros(tensors.Float32, 3, 3) // 36 bytes
	var cur *Resident
	defer func() { cur.Release() }()
	for _, c := range []struct {
		name    string
		run     func() error
		in, out int64
	}{
		{"Run", func() error { _, err := s.Run([]*tensors.Tensor{a, b}); return err }, 24 + 36, 24 + 4},
		{"RunResident, c kept", func() error {
			_, dev, err := s.RunResident([]Feed{{Host: a}, {Host: b}}, []bool{true, false})
			if err == nil {
				cur = dev[0]
			}
			return err
		}, 24 + 36, 4},
		{"RunResident, a resident", func() error {
			_, dev, err := s.RunResident([]Feed{{Resident: cur}, {Host: b}}, []bool{true, true})
			for _, r := range dev {
				r.Release()
			}
			return err
		}, 36, 0},
		{"Fetch", func() error { _, err := env.Fetch(cur); return err }, 0, 24},
	} {
		in0, out0 := env.HostTraffic()
		if err := c.run(); err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		in1, out1 := env.HostTraffic()
		if in1-in0 != c.in || out1-out0 != c.out {
			t.Errorf("%s: host traffic in %d, out %d bytes; want %d, %d", c.name, in1-in0, out1-out0, c.in, c.out)
		}
	}
}

// TestRunResidentDoesNotLeak chains 1000 runs through resident values of
// 1 MiB each, releasing each after use: a leaked value alone would grow the
// RSS by ~1 GiB.
func TestRunResidentDoesNotLeak(t *testing.T) {
	env := needORT(t)
	const n = 512
	model := modelBytes(t, []*pb.NodeProto{node("Add", []string{"a", "b"}, []string{"c"})},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, n, n), vi("b", tensors.Float32, n, n)},
		[]*pb.ValueInfoProto{vi("c", tensors.Float32, n, n)})
	s, err := env.NewSession("resident-leak", model, []string{"a", "b"}, []string{"c"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	one := tensors.Zeros(tensors.Float32, n, n)
	for i := range one.Float32s() {
		one.Float32s()[i] = 1
	}
	var cur *Resident
	run := func(times int) {
		for i := 0; i < times; i++ {
			feed := Feed{Host: one}
			if cur != nil {
				feed = Feed{Resident: cur}
			}
			_, dev, err := s.RunResident([]Feed{feed, {Host: one}}, []bool{true})
			if err != nil {
				t.Fatal(err)
			}
			cur.Release()
			cur = dev[0]
		}
	}
	run(50)
	before := rssBytes(t)
	run(1000)
	after := rssBytes(t)
	got, err := env.Fetch(cur)
	if err != nil {
		t.Fatal(err)
	}
	if v := got.Float32s()[n*n-1]; v != 1051 {
		t.Errorf("after 1051 chained additions the value is %v", v)
	}
	cur.Release()
	t.Logf("RSS %.1f MiB before, %.1f MiB after 1000 resident runs", float64(before)/(1<<20), float64(after)/(1<<20))
	if growth := after - before; growth > 64<<20 {
		t.Errorf("RSS grew by %.1f MiB over 1000 runs; a resident value is not released", float64(growth)/(1<<20))
	}
}

// TestEnvCloseReleasesResidents opens a second Env, keeps values of several
// dtypes resident, fetches them, and closes the Env with some still held.
func TestEnvCloseReleasesResidents(t *testing.T) {
	needORT(t)
	env, err := Open(Config{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		dt tensors.DType
		in *tensors.Tensor
	}{
		{tensors.Float32, tensors.FromFloat32([]int64{2}, []float32{1.5, -2})},
		{tensors.Int64, tensors.FromInt64([]int64{3}, []int64{1 << 40, -7, 0})},
		{tensors.Bool, tensors.FromBool([]int64{2}, []bool{true, false})},
	}
	var held []*Resident
	for _, c := range cases {
		s, err := env.identity(c.dt)
		if err != nil {
			t.Fatal(err)
		}
		_, dev, err := s.RunResident([]Feed{{Host: c.in}}, []bool{true})
		if err != nil {
			t.Fatalf("%v: %v", c.dt, err)
		}
		got, err := env.Fetch(dev[0])
		if err != nil {
			t.Fatalf("%v: %v", c.dt, err)
		}
		if got.DType != c.dt || string(got.Data) != string(c.in.Data) {
			t.Errorf("%v: fetched %v %v, want %v", c.dt, got.DType, got.Data, c.in.Data)
		}
		held = append(held, dev[0])
	}
	if err := env.Close(); err != nil {
		t.Fatal(err)
	}
	for _, r := range held {
		if r.v != nil {
			t.Errorf("%v resident still held after Close", r.DType)
		}
		r.Release() // idempotent after Close
	}
}

// TestUpload checks that Upload makes a copy of its own: changing the host
// tensor afterwards does not change what Fetch returns, and each of
// several dtypes comes back bit for bit.
func TestUpload(t *testing.T) {
	env := needORT(t)
	for _, in := range []*tensors.Tensor{
		tensors.FromFloat32([]int64{2, 2}, []float32{1.5, -2, 0, 3e-39}),
		tensors.FromFloat64([]int64{3}, []float64{1, -1e300, 0.25}),
		tensors.FromInt64([]int64{2}, []int64{1 << 40, -7}),
	} {
		want := append([]byte(nil), in.Data...)
		r, err := env.Upload(in)
		if err != nil {
			t.Fatalf("%v: %v", in.DType, err)
		}
		for i := range in.Data {
			in.Data[i] ^= 0xff
		}
		got, err := env.Fetch(r)
		r.Release()
		if err != nil {
			t.Fatalf("%v: %v", in.DType, err)
		}
		if got.DType != in.DType || !slices.Equal(got.Shape, in.Shape) || string(got.Data) != string(want) {
			t.Errorf("%v: fetched %v %v %v, want %v (the upload shares the host tensor's memory?)", in.DType, got.DType, got.Shape, got.Data, want)
		}
	}
	if _, err := env.Upload(nil); err == nil {
		t.Error("uploading nil succeeded")
	}
}
