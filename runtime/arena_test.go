package runtime

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	ort "github.com/yalue/onnxruntime_go"

	pb "mohawk/export/onnxpb"
	"mohawk/tensors"
)

// TestArenaStatsCPU runs s = Σ(a·b) with a [n, k], b [k, m], whose product
// c [n, m] is an intermediate that the CPU provider's arena must hold, and
// checks the statistics read live and the ones Close records.
func TestArenaStatsCPU(t *testing.T) {
	env := needORT(t)
	if env.Provider() != ProviderCPU {
		t.Skipf("provider %s: the test sizes the CPU arena", env.Provider())
	}
	const n, k, m = 512, 16, 1024
	cBytes := int64(n * m * 4) // float32 c, computed apart from ORT
	model := modelBytes(t,
		[]*pb.NodeProto{node("MatMul", []string{"a", "b"}, []string{"c"}), node("ReduceSum", []string{"c"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, n, k), vi("b", tensors.Float32, k, m)},
		[]*pb.ValueInfoProto{vi("s", tensors.Float32)})
	const name = "arena-matmul-sum"
	s, err := env.NewSession(name, model, []string{"a", "b"}, []string{"s"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.Run([]*tensors.Tensor{tensors.Zeros(tensors.Float32, n, k), tensors.Zeros(tensors.Float32, k, m)}); err != nil {
		t.Fatal(err)
	}
	live, err := s.ArenaStats()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, a := range env.ArenaStats() {
		if a.Session == name {
			found = a.Open && a.Err == nil && a.Stats == live
		}
	}
	if !found {
		t.Errorf("Env.ArenaStats has no open %q with the statistics Session.ArenaStats read", name)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ArenaStats(); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("ArenaStats of a closed session: %v", err)
	}
	var closed []SessionArena
	for _, a := range env.ArenaStats() {
		if a.Session == name {
			closed = append(closed, a)
		}
	}
	if len(closed) != 1 || closed[0].Open || closed[0].Err != nil {
		t.Fatalf("Env.ArenaStats has %+v for %q, want it once, closed, without error", closed, name)
	}
	a := closed[0].Stats
	t.Logf("CPU arena of %q (c is %d bytes): %+v", name, cBytes, a)
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"MaxInUse >= the bytes of c", a.MaxInUse >= cBytes},
		{"MaxAllocSize >= the bytes of c", a.MaxAllocSize >= cBytes},
		{"TotalAllocated >= MaxInUse", a.TotalAllocated >= a.MaxInUse},
		{"MaxInUse >= InUse", a.MaxInUse >= a.InUse},
		{"NumAllocs > 0", a.NumAllocs > 0},
		{"NumArenaExtensions > 0", a.NumArenaExtensions > 0},
		{"Limit is -1 or >= TotalAllocated", a.Limit == -1 || a.Limit >= a.TotalAllocated},
		{"the closed session's peak is at least the live one's", a.MaxInUse >= live.MaxInUse && a.NumAllocs >= live.NumAllocs},
	} {
		if !c.ok {
			t.Errorf("%s: %+v", c.what, a)
		}
	}
}

func TestArenaParse(t *testing.T) {
	full := map[string]string{"Limit": "-1", "InUse": "10", "MaxInUse": "30", "TotalAllocated": "40", "NumAllocs": "5",
		"NumArenaExtensions": "2", "MaxAllocSize": "20", "NumReserves": "0"}
	with := func(k, v string) map[string]string {
		m := map[string]string{}
		for kk, vv := range full {
			if kk != k {
				m[kk] = vv
			}
		}
		if v != "" {
			m[k] = v
		}
		return m
	}
	for _, c := range []struct {
		name    string
		pairs   map[string]string
		want    ArenaStats
		noStats bool   // errors.Is ErrNoArenaStats
		errHas  string // error text
	}{
		{name: "full", pairs: full, want: ArenaStats{Limit: -1, InUse: 10, MaxInUse: 30, TotalAllocated: 40, NumAllocs: 5, NumArenaExtensions: 2, MaxAllocSize: 20}},
		{name: "capped", pairs: with("Limit", "1024"), want: ArenaStats{Limit: 1024, InUse: 10, MaxInUse: 30, TotalAllocated: 40, NumAllocs: 5, NumArenaExtensions: 2, MaxAllocSize: 20}},
		{name: "empty", pairs: map[string]string{}, noStats: true, errHas: "reports nothing"},
		{name: "no MaxInUse", pairs: with("MaxInUse", ""), noStats: true, errHas: "no MaxInUse"},
		{name: "no TotalAllocated", pairs: with("TotalAllocated", ""), noStats: true, errHas: "no TotalAllocated"},
		{name: "not a number", pairs: with("InUse", "12kB"), errHas: `InUse is "12kB"`},
		{name: "negative count", pairs: with("NumAllocs", "-1"), errHas: "NumAllocs"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got, err := parseArenaStats(c.pairs)
			if c.errHas == "" {
				if err != nil || got != c.want {
					t.Errorf("got %+v, %v; want %+v", got, err, c.want)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.errHas) || errors.Is(err, ErrNoArenaStats) != c.noStats {
				t.Errorf("error %v; want one with %q, ErrNoArenaStats %v", err, c.errHas, c.noStats)
			}
			if got != (ArenaStats{}) {
				t.Errorf("statistics %+v with an error; want none", got)
			}
		})
	}
}

// TestArenaAllocatorLayout checks ortapi.go's mh_allocator against the
// header's struct OrtAllocator: the same members, in order, up to GetStats.
func TestArenaAllocatorLayout(t *testing.T) {
	header := ortHeader(t)
	src, err := os.ReadFile("ortapi.go")
	if err != nil {
		t.Fatal(err)
	}
	want := structMembers(t, string(header), "typedef struct OrtAllocator {", regexp.MustCompile(`ORT_API_CALL\s*\*\s*(\w+)\)|ORT_API2_STATUS\((\w+)`))
	got := structMembers(t, string(src), "typedef struct mh_allocator {", regexp.MustCompile(`\(\*(\w+)\)\(`))
	i := strings.Index(strings.Join(want, " "), "GetStats")
	if i < 0 || len(got) != 5 || strings.Join(got, " ") != strings.Join(want, " ")[:i+len("GetStats")] {
		t.Errorf("ortapi.go's OrtAllocator members\n%v\nthe header's\n%v", got, want)
	}
}

// TestArenaStatsOff turns the CPU arena off for one session: its allocator
// then reports no statistics, which must come back as ErrNoArenaStats, not
// as zeros.
func TestArenaStatsOff(t *testing.T) {
	env := needORT(t)
	if env.Provider() != ProviderCPU {
		t.Skipf("provider %s: the test turns off the CPU arena", env.Provider())
	}
	model := addModel(t)
	const name = "arena-off"
	s, err := env.newSession(name, []string{"a", "b"}, []string{"c"}, func(opts *ort.SessionOptions) (*ort.DynamicAdvancedSession, error) {
		if err := opts.SetCpuMemArena(false); err != nil {
			return nil, err
		}
		return ort.NewDynamicAdvancedSessionWithONNXData(model, []string{"a", "b"}, []string{"c"}, opts)
	}, func() (signature, error) { return readSignature(bytes.NewReader(model)) })
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	x := tensors.Zeros(tensors.Float32, 2, 3)
	if _, err := s.Run([]*tensors.Tensor{x, x}); err != nil {
		t.Fatal(err)
	}
	if a, err := s.ArenaStats(); !errors.Is(err, ErrNoArenaStats) || a != (ArenaStats{}) {
		t.Errorf("live: %+v, %v; want ErrNoArenaStats", a, err)
	}
	s.Close()
	n := 0
	for _, a := range env.ArenaStats() {
		if a.Session == name {
			n++
			if !errors.Is(a.Err, ErrNoArenaStats) || a.Open || a.Stats != (ArenaStats{}) {
				t.Errorf("recorded at close: %+v; want ErrNoArenaStats", a)
			}
		}
	}
	if n != 1 {
		t.Errorf("%d records of %q, want 1", n, name)
	}
}

// TestMemPattern checks that Config.MemPattern reaches ORT: with the
// memory pattern, a session's second run takes its two [n, m] float32
// intermediates (live together) from one planned block at least their
// combined size; without it each comes from the arena on its own.
func TestMemPattern(t *testing.T) {
	env := needORT(t)
	if env.Provider() != ProviderCPU {
		t.Skipf("provider %s: the test sizes the CPU arena", env.Provider())
	}
	const n, k, m = 512, 16, 1024
	one := int64(n * m * 4) // one float32 intermediate, computed apart from ORT
	model := modelBytes(t,
		[]*pb.NodeProto{node("MatMul", []string{"a", "b"}, []string{"c"}), node("Add", []string{"c", "c"}, []string{"d"}),
			node("Mul", []string{"c", "d"}, []string{"e"}), node("ReduceSum", []string{"e"}, []string{"s"}, intAttr("keepdims", 0))},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, n, k), vi("b", tensors.Float32, k, m)},
		[]*pb.ValueInfoProto{vi("s", tensors.Float32)})
	saved := env.cfg.MemPattern
	defer func() { env.cfg.MemPattern = saved }()
	for _, c := range []struct {
		pattern bool
		block   func(maxAlloc int64) bool
		want    string
	}{
		{false, func(a int64) bool { return a < 2*one }, "each intermediate on its own"},
		{true, func(a int64) bool { return a >= 2*one }, "one block of both intermediates"},
	} {
		env.cfg.MemPattern = c.pattern
		s, err := env.NewSession(fmt.Sprintf("mem-pattern-%v", c.pattern), model, []string{"a", "b"}, []string{"s"})
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // ORT plans the pattern in the first run and uses it from the second
			if _, err := s.Run([]*tensors.Tensor{tensors.Zeros(tensors.Float32, n, k), tensors.Zeros(tensors.Float32, k, m)}); err != nil {
				t.Fatal(err)
			}
		}
		a, err := s.ArenaStats()
		s.Close()
		if err != nil {
			t.Fatal(err)
		}
		if !c.block(a.MaxAllocSize) {
			t.Errorf("mem_pattern %v: largest allocation %d bytes with intermediates of %d: want %s", c.pattern, a.MaxAllocSize, one, c.want)
		}
	}
}

// TestClosedArenasKept checks that an Env keeps the statistics of the
// latest maxClosedArenas closed sessions, not of every one ever closed.
func TestClosedArenasKept(t *testing.T) {
	env := needORT(t)
	model := modelBytes(t, []*pb.NodeProto{node("Identity", []string{"a"}, []string{"b"})},
		[]*pb.ValueInfoProto{vi("a", tensors.Float32, 4)}, []*pb.ValueInfoProto{vi("b", tensors.Float32, 4)})
	for i := range maxClosedArenas + 3 {
		s, err := env.NewSession(fmt.Sprintf("kept-%d", i), model, []string{"a"}, []string{"b"})
		if err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}
	var closed []string
	for _, a := range env.ArenaStats() {
		if !a.Open {
			closed = append(closed, a.Session)
		}
	}
	last := fmt.Sprintf("kept-%d", maxClosedArenas+2)
	if len(closed) != maxClosedArenas || closed[len(closed)-1] != last || slices.Contains(closed, "kept-2") {
		t.Errorf("%d closed sessions kept, the last %q; want %d ending with %q, without kept-2", len(closed), closed[len(closed)-1], maxClosedArenas, last)
	}
}
