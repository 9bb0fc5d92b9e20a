package pipeline

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"mohawk/dist"
	"mohawk/stages"
	"mohawk/tensors"
)

// fakeCkpt records saves and serves a fixed newest checkpoint.
type fakeCkpt struct {
	saved   []int
	saveErr error
	latest  int // 0: none
	state   stages.Weights
}

func (f *fakeCkpt) Save(step int, _ stages.Weights, _ stages.Meta) error {
	if f.saveErr != nil {
		return f.saveErr
	}
	f.saved = append(f.saved, step)
	return nil
}

func (f *fakeCkpt) Latest() (int, stages.Weights, stages.Meta, bool, error) {
	return f.latest, f.state, stages.Meta{Step: f.latest}, f.latest > 0, nil
}

func (f *fakeCkpt) Sub(string) stages.Checkpointer { return f }

// joinRanksInProcess joins n ranks over loopback inside the test.
func joinRanksInProcess(t *testing.T, n int) []*ranks {
	t.Helper()
	port, err := dist.FreePort()
	if err != nil {
		t.Fatal(err)
	}
	out := make([]*ranks, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for r := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := dist.Join(context.Background(), dist.Options{Launch: dist.Launch{Launcher: "test", Rank: r, Size: n, LocalSize: n,
				MasterAddr: "127.0.0.1", MasterPort: port}, PlanHash: "p", BinaryHash: "b", JoinTimeout: 20 * time.Second})
			errs[r] = err
			if err == nil {
				out[r] = &ranks{conn: c}
				out[r].start(context.Background())
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for _, r := range out {
			r.conn.Close()
		}
	})
	return out
}

// onRanks runs f on every rank at once.
func onRanks(rs []*ranks, f func(r int, rk *ranks) error) []error {
	errs := make([]error, len(rs))
	var wg sync.WaitGroup
	for r, rk := range rs {
		wg.Add(1)
		go func() { defer wg.Done(); errs[r] = f(r, rk) }()
	}
	wg.Wait()
	return errs
}

// TestRankCheckpoints: rank 0 alone writes a checkpoint once the ranks'
// states agree; a state that differs, a failed write on rank 0 and ranks
// that resume from different checkpoints are errors on every rank.
func TestRankCheckpoints(t *testing.T) {
	state := func(v float32) stages.Weights {
		return stages.Weights{"a": tensors.FromFloat32([]int64{2}, []float32{1, v})}
	}
	cases := []struct {
		name  string
		vals  []float32 // each rank's second value
		fail  error     // rank 0's write error
		want  []string  // each rank's error ("" none)
		saved []int     // checkpoints each rank's inner series wrote
	}{
		{name: "identical", vals: []float32{2, 2}, want: []string{"", ""}, saved: []int{1, 0}},
		{name: "diverged", vals: []float32{2, 2.0000002},
			want:  []string{"ranks differ in the training state at step 4: rank 0 has", "ranks differ in the training state at step 4: rank 0 has"},
			saved: []int{0, 0}},
		{name: "rank 0 cannot write", vals: []float32{2, 2}, fail: errors.New("disk full"),
			want: []string{"disk full", "rank 0 could not write checkpoint step 4"}, saved: []int{0, 0}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			rs := joinRanksInProcess(t, 2)
			inner := []*fakeCkpt{{saveErr: c.fail}, {}}
			errs := onRanks(rs, func(r int, rk *ranks) error {
				return (&rankCheckpoints{inner: inner[r], r: rk}).Save(4, state(c.vals[r]), stages.Meta{Step: 4})
			})
			for r, err := range errs {
				if (c.want[r] == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want[r])) {
					t.Errorf("rank %d: %v, want %q", r, err, c.want[r])
				}
				if len(inner[r].saved) != c.saved[r] {
					t.Errorf("rank %d wrote %v, want %d checkpoints", r, inner[r].saved, c.saved[r])
				}
			}
		})
	}
	t.Run("resume from different checkpoints", func(t *testing.T) {
		rs := joinRanksInProcess(t, 2)
		inner := []*fakeCkpt{{latest: 4, state: state(2)}, {}}
		errs := onRanks(rs, func(r int, rk *ranks) error {
			_, _, _, _, err := (&rankCheckpoints{inner: inner[r], r: rk}).Latest()
			return err
		})
		for r, err := range errs {
			if err == nil || !strings.Contains(err.Error(), "the checkpoint to resume from") || !strings.Contains(err.Error(), "shared by every rank") {
				t.Errorf("rank %d: %v", r, err)
			}
		}
	})
}

// TestFailedRankNamed: a rank whose run fails (here a non-finite loss)
// stops the others, whose error names it.
func TestFailedRankNamed(t *testing.T) {
	rs := joinRanksInProcess(t, 3)
	nf := &stages.NonFiniteError{Stage: "distill", Step: 3, Tensor: "loss"}
	errs := onRanks(rs, func(r int, rk *ranks) error {
		if r == 1 {
			return rk.finish(nf)
		}
		<-rk.ctx.Done() // a training loop notices the cancelled context
		return rk.finish(stages.ErrInterrupted)
	})
	if !errors.Is(errs[1], nf) {
		t.Errorf("rank 1: %v", errs[1])
	}
	for _, r := range []int{0, 2} {
		if errs[r] == nil || !strings.Contains(errs[r].Error(), "rank 1 failed: stage distill: step 3: non-finite value in loss") {
			t.Errorf("rank %d: %v, want rank 1 named", r, errs[r])
		}
	}
}
