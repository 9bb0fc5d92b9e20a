package dist

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// testOptions are rank r of n on a loopback port, with short timeouts.
func testOptions(r, n, port int) Options {
	return Options{Launch: Launch{Launcher: LauncherTorchrun, Rank: r, Size: n, LocalRank: r, LocalSize: n, MasterAddr: "127.0.0.1", MasterPort: port},
		PlanHash: "plan", BinaryHash: "bin", JoinTimeout: 20 * time.Second, Heartbeat: 100 * time.Millisecond,
		DeadAfter: 5 * time.Second, CollectiveTimeout: 20 * time.Second}
}

// joinAll joins n ranks in goroutines; edit changes each rank's options.
func joinAll(t *testing.T, n int, edit func(*Options)) ([]*Conn, []error) {
	t.Helper()
	port, err := FreePort()
	if err != nil {
		t.Fatal(err)
	}
	conns, errs := make([]*Conn, n), make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			o := testOptions(r, n, port)
			if edit != nil {
				edit(&o)
			}
			conns[r], errs[r] = Join(context.Background(), o)
		}()
	}
	wg.Wait()
	t.Cleanup(func() {
		for _, c := range conns {
			if c != nil {
				c.Close()
			}
		}
	})
	return conns, errs
}

// each runs f on every rank at once and returns the errors.
func each(conns []*Conn, f func(c *Conn) error) []error {
	errs := make([]error, len(conns))
	var wg sync.WaitGroup
	for r, c := range conns {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = f(c) }()
	}
	wg.Wait()
	return errs
}

// TestLoopbackRendezvous joins three ranks, hands out rank 0's blob, and
// sums buffers (one larger than a frame chunk) in rank order.
func TestLoopbackRendezvous(t *testing.T) {
	conns, errs := joinAll(t, 3, func(o *Options) {
		if o.Rank == 0 {
			o.Blob = func() ([]byte, error) { return []byte("nccl-unique-id"), nil }
		}
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		if string(conns[r].Blob()) != "nccl-unique-id" {
			t.Errorf("rank %d: blob %q", r, conns[r].Blob())
		}
	}
	n := chunkValues + 3
	// Values whose float32 sum depends on the order: (1 + 1e8) - 1e8 is 0
	// (1e8 + 1 rounds to 1e8), (-1e8 + 1e8) + 1 is 1.
	vals := []float32{1, 1e8, -1e8}
	inOrder := vals[0]
	inOrder += vals[1]
	inOrder += vals[2]
	bufs := make([][]float32, 3)
	errs = each(conns, func(c *Conn) error {
		b := make([]float32, n)
		for i := range b {
			b[i] = float32(c.Rank()*i%7) + 0.25
		}
		b[0] = vals[c.Rank()]
		bufs[c.Rank()] = b
		return c.AllReduce(context.Background(), b)
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for r, b := range bufs {
		if want := inOrder; b[0] != want || want != 0 {
			t.Errorf("rank %d: element 0 = %v, want %v (rank order)", r, b[0], want)
		}
		for _, i := range []int{1, 5, chunkValues - 1, chunkValues, n - 1} {
			var want float32
			for q := range 3 {
				want += float32(q*i%7) + 0.25
			}
			if !(math.Abs(float64(b[i]-want)) <= 0) {
				t.Errorf("rank %d: element %d = %v, want %v", r, i, b[i], want)
			}
		}
	}
	if errs := each(conns, func(c *Conn) error { return c.Barrier(context.Background()) }); errors.Join(errs...) != nil {
		t.Fatal(errs)
	}
	// AllGather and VerifyIdentical ride on AllReduce.
	errs = each(conns, func(c *Conn) error {
		all, err := AllGather(context.Background(), c, []byte(strings.Repeat("x", c.Rank())))
		if err != nil {
			return err
		}
		for q, b := range all {
			if string(b) != strings.Repeat("x", q) {
				return fmt.Errorf("gathered %q from rank %d", b, q)
			}
		}
		return VerifyIdentical(context.Background(), c, "the parameters", []byte{1, 2, byte(c.Rank() / 2)})
	})
	for r, err := range errs {
		if err == nil || !strings.Contains(err.Error(), "rank 2 has 010201") || strings.Contains(err.Error(), "rank 1 has") {
			t.Errorf("rank %d: %v, want a difference in rank 2 only", r, err)
		}
	}
}

// TestJoinRefusals: a port in use, a master nobody serves, and ranks whose
// plan or binary differ are refused before any work, naming what differs.
func TestJoinRefusals(t *testing.T) {
	t.Run("port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		o := testOptions(0, 2, ln.Addr().(*net.TCPAddr).Port)
		_, err = Join(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "is in use") {
			t.Fatalf("got %v, want a port-in-use error", err)
		}
	})
	t.Run("unreachable master", func(t *testing.T) {
		port, _ := FreePort()
		o := testOptions(1, 2, port)
		o.JoinTimeout = time.Second
		t0 := time.Now()
		_, err := Join(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "cannot reach rank 0 at 127.0.0.1:") {
			t.Fatalf("got %v, want an unreachable-master error", err)
		}
		if d := time.Since(t0); d > 5*time.Second {
			t.Errorf("gave up after %s, want about the 1 s timeout", d)
		}
	})
	t.Run("missing rank", func(t *testing.T) {
		port, _ := FreePort()
		o := testOptions(0, 3, port)
		o.JoinTimeout = time.Second
		_, err := Join(context.Background(), o)
		if err == nil || !strings.Contains(err.Error(), "ranks [1 2] did not join") {
			t.Fatalf("got %v", err)
		}
	})
	for _, c := range []struct {
		name, want string
		edit       func(*Options)
	}{
		{"plan", "rank 2's plan (hash other) differs from rank 0's (plan)", func(o *Options) { o.PlanHash = "other" }},
		{"binary", "rank 2 runs a different pipeline binary (sha256 old) from rank 0 (bin)", func(o *Options) { o.BinaryHash = "old" }},
		{"world size", "rank 2 was launched with world size 4, rank 0 with 3", func(o *Options) { o.Size = 4 }},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, errs := joinAll(t, 3, func(o *Options) {
				if o.Rank == 2 {
					c.edit(o)
				}
			})
			for r, err := range errs {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("rank %d: %v, want %q", r, err, c.want)
				}
			}
		})
	}
}

// TestAbortNamesRank: a rank that fails (a NaN, an error) stops the others
// at once, with an error naming it.
func TestAbortNamesRank(t *testing.T) {
	conns, errs := joinAll(t, 3, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	errs = each(conns, func(c *Conn) error {
		if c.Rank() == 2 {
			c.Abort(errors.New("stage distill: step 3: non-finite value in loss"))
			return nil
		}
		return c.AllReduce(context.Background(), make([]float32, 4))
	})
	for r, err := range errs[:2] {
		var re *RankError
		if !errors.As(err, &re) || re.Rank != 2 || !strings.Contains(err.Error(), "rank 2 failed: stage distill: step 3: non-finite") {
			t.Errorf("rank %d: %v, want a RankError naming rank 2", r, err)
		}
		if context.Cause(conns[r].Context()) == nil {
			t.Errorf("rank %d: context not cancelled", r)
		}
	}
	if d := time.Since(t0); d > 3*time.Second {
		t.Errorf("took %s to stop", d)
	}
}

// TestCollectiveTimeout: a rank whose process lives (heartbeats go on) but
// never reaches the collective is named after the collective timeout.
func TestCollectiveTimeout(t *testing.T) {
	conns, errs := joinAll(t, 2, func(o *Options) { o.CollectiveTimeout = 500 * time.Millisecond })
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	err := conns[0].AllReduce(context.Background(), make([]float32, 1))
	if err == nil || !strings.Contains(err.Error(), "rank 1 did not reach collective 1 within 500ms") {
		t.Fatalf("got %v", err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for conns[1].Err() == nil && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if err := conns[1].Err(); err == nil || !strings.Contains(err.Error(), "rank 1 did not reach") {
		t.Errorf("rank 1 was told %v", err)
	}
}

// TestAllReduce64 sums in float64: 1 + 2⁻³⁰ survives, where float32 would
// round it to 1.
func TestAllReduce64(t *testing.T) {
	conns, errs := joinAll(t, 3, nil)
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	tiny := math.Ldexp(1, -30)
	got := make([][]float64, 3)
	errs = each(conns, func(c *Conn) error {
		got[c.Rank()] = []float64{[]float64{1, tiny, 0}[c.Rank()], float64(c.Rank())}
		return c.AllReduce64(context.Background(), got[c.Rank()])
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		if got[r][0] != 1+tiny || got[r][1] != 3 || float32(got[r][0]) != 1 {
			t.Errorf("rank %d: %v, want [1+2^-30 3]", r, got[r])
		}
	}
}

// TestCollectiveMismatch: ranks that call a collective with different
// lengths or element types are stopped, the odd rank named.
func TestCollectiveMismatch(t *testing.T) {
	for _, c := range []struct {
		name string
		odd  func(c *Conn) error
		want string
	}{
		{"length", func(c *Conn) error { return c.AllReduce(context.Background(), make([]float32, 4)) },
			"rank 1 sent 4 values to collective 1 where rank 0 has 3"},
		{"element type", func(c *Conn) error { return c.AllReduce64(context.Background(), make([]float64, 3)) },
			"rank 1 sent 8-byte values where this rank reduces 4-byte ones"},
	} {
		t.Run(c.name, func(t *testing.T) {
			conns, errs := joinAll(t, 2, nil)
			if err := errors.Join(errs...); err != nil {
				t.Fatal(err)
			}
			errs = each(conns, func(cn *Conn) error {
				if cn.Rank() == 1 {
					return c.odd(cn)
				}
				return cn.AllReduce(context.Background(), make([]float32, 3))
			})
			for r, err := range errs {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Errorf("rank %d: %v, want %q", r, err, c.want)
				}
			}
		})
	}
}
