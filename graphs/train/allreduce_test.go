package train_test

import (
	"bytes"
	"context"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"mohawk/graphs"
	"mohawk/graphs/graphtest"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// lsqSpec is the least-squares step of train_test.go, with K micro-batches
// of rows rows, S steps per run and the all-reduce option a.
func lsqSpec(dt tensors.DType, perRun, k, rows int, a *train.AllReduce) train.Spec {
	return train.Spec{Name: "lsq", DType: dt, StepsPerRun: perRun, MicroBatches: k,
		Params:     []train.Param{{Name: "w", Shape: graphs.S(nIn, 1), Decay: true}, {Name: "b", Shape: graphs.S(1)}},
		BatchDType: dt, BatchShape: graphs.S(int64(rows), nIn+1), Loss: lsqLoss, Opt: train.DefaultAdamW(), AllReduce: a}
}

// lsqLoss is lossFn of train_test.go.
var lsqLoss = lossFn

// lsqFeeds are the step's inputs: initial parameters, zero moments, and
// batch [S, K, rows, nIn+1] from seed.
func lsqFeeds(dt tensors.DType, perRun, k, rows int, seed uint64) map[string]*tensors.Tensor {
	rng := rand.New(rand.NewPCG(seed, 3))
	batch := make([]float64, perRun*k*rows*(nIn+1))
	for i := range batch {
		batch[i] = rng.NormFloat64()
	}
	f := map[string]*tensors.Tensor{
		"w":             tensors.FromFloat64([]int64{nIn, 1}, []float64{0.3, -0.2, 0.1}).Convert(dt),
		"b":             tensors.FromFloat64([]int64{1}, []float64{0.05}).Convert(dt),
		train.BatchName: tensors.FromFloat64([]int64{int64(perRun), int64(k), int64(rows), nIn + 1}, batch).Convert(dt),
		train.StepName:  tensors.FromFloat64([]int64{1}, []float64{1}).Convert(dt),
	}
	lr := make([]float64, perRun)
	for i := range lr {
		lr[i] = 1e-2 * float64(i+1)
	}
	f[train.LRName] = tensors.FromFloat64([]int64{int64(perRun)}, lr).Convert(dt)
	for _, n := range []string{"w", "b"} {
		f[train.ExpAvg(n)] = tensors.Zeros(dt, f[n].Shape...)
		f[train.ExpAvgSq(n)] = tensors.Zeros(dt, f[n].Shape...)
	}
	return f
}

func build(t *testing.T, s train.Spec) *graphs.Graph {
	t.Helper()
	var g *graphs.Graph
	if err := graphs.Try(func() { g = train.Build(s) }); err != nil {
		t.Fatal(err)
	}
	return g
}

// sameOutputs fails t unless every output of want is in got with the same
// bits.
func sameOutputs(t *testing.T, label string, got, want map[string]*tensors.Tensor) {
	t.Helper()
	for name, w := range want {
		if g := got[name]; g == nil || string(g.Data) != string(w.Data) {
			t.Errorf("%s: output %s differs: %v, want %v bit for bit", label, name, g, w)
		}
	}
}

// counting is a world of one that counts the reductions it is asked for
// and the values it sees that bfloat16 cannot hold.
type counting struct {
	mu           sync.Mutex
	calls, notBF int
}

func (c *counting) Size() int { return 1 }
func (c *counting) AllReduce(_ context.Context, x []float32) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.calls++
	for _, v := range x {
		if math.Float32bits(v)&0xffff != 0 {
			c.notBF++
		}
	}
	return nil
}

// TestAllReduceBFloat16: with DType bfloat16 the gradients reach the
// reducer rounded to bfloat16 (the loss, reduced apart, does not); a dtype
// other than the parameters' or bfloat16 is refused when the graph is
// built.
func TestAllReduceBFloat16(t *testing.T) {
	t.Cleanup(func() { runtime.SetHostReducer(nil) })
	const rows = 4
	g := build(t, lsqSpec(tensors.Float32, 1, 1, rows, &train.AllReduce{DType: tensors.BFloat16, BucketBytes: 1 << 20}))
	n := &counting{}
	runtime.SetHostReducer(n)
	out := graphtest.Run(t, g, lsqFeeds(tensors.Float32, 1, 1, rows, 5))
	if n.calls != 2 || n.notBF > 1 {
		t.Errorf("%d reductions with %d values bfloat16 cannot hold; want 2 with at most the loss", n.calls, n.notBF)
	}
	if !out[train.FiniteName].Bools()[0] {
		t.Error("the step was not applied")
	}
	err := graphs.Try(func() {
		train.Build(lsqSpec(tensors.Float32, 1, 1, rows, &train.AllReduce{DType: tensors.Float16}))
	})
	if err == nil || !strings.Contains(err.Error(), "all-reduce dtype float16") {
		t.Errorf("float16 all-reduce: %v", err)
	}
}

// TestAllReduceOneRank: with a group of one rank, the step graph with
// AllReduce nodes gives the plain step's outputs bit for bit, for one and
// several steps per run, one and several micro-batches, and every bucket
// size; in float32 the reducer is called once per bucket and once for the
// loss in every step, so the nodes did run (float64 over one rank does not
// call it).
func TestAllReduceOneRank(t *testing.T) {
	t.Cleanup(func() { runtime.SetHostReducer(nil) })
	for _, c := range []struct {
		dt          tensors.DType
		perRun, k   int
		bucketBytes int64
		buckets     int
	}{
		{tensors.Float32, 1, 1, 0, 2},
		{tensors.Float32, 3, 2, 0, 2},
		{tensors.Float32, 1, 2, 12, 2},      // w (12 bytes) fills a bucket; b is the rest
		{tensors.Float32, 3, 1, 1 << 20, 1}, // one bucket: flattened, concatenated, sliced
		{tensors.Float32, 2, 2, 1 << 20, 1},
		{tensors.Float64, 3, 2, 1 << 20, 1},
	} {
		t.Run(fmt.Sprintf("%v/S%d/K%d/bucket%d", c.dt, c.perRun, c.k, c.bucketBytes), func(t *testing.T) {
			const rows = 4
			plain := build(t, lsqSpec(c.dt, c.perRun, c.k, rows, nil))
			dp := build(t, lsqSpec(c.dt, c.perRun, c.k, rows, &train.AllReduce{BucketBytes: c.bucketBytes}))
			feeds := lsqFeeds(c.dt, c.perRun, c.k, rows, 5)
			want := graphtest.Run(t, plain, feeds)
			n := &counting{}
			runtime.SetHostReducer(n)
			got := graphtest.Run(t, dp, feeds)
			sameOutputs(t, "one rank", got, want)
			wantCalls := c.perRun * (c.buckets + 1)
			if c.dt == tensors.Float64 {
				wantCalls = 0
			}
			if n.calls != wantCalls {
				t.Errorf("%d reductions, want %d (%d buckets and the loss, %d steps)", n.calls, wantCalls, c.buckets, c.perRun)
			}
		})
	}
}

// pair is a HostReducer shared by two ranks that run in one process (two
// sessions on two goroutines): the i-th reductions of both ranks meet,
// are summed (a + b, which for two operands is b + a bit for bit), and
// both get the sum. Both ranks run one graph, whose AllReduce nodes run in
// one order, so the i-th calls match.
type pair struct {
	mu      sync.Mutex
	waiting []float32
	done    chan []float32
}

func (p *pair) Size() int { return 2 }

func (p *pair) AllReduce(_ context.Context, x []float32) error {
	p.mu.Lock()
	if p.waiting == nil {
		p.waiting = x
		done := make(chan []float32, 1)
		p.done = done
		p.mu.Unlock()
		sum := <-done
		copy(x, sum)
		return nil
	}
	first := p.waiting
	p.waiting = nil
	done := p.done
	p.mu.Unlock()
	if len(first) != len(x) {
		done <- first
		return errors.New("the two ranks reduce different lengths")
	}
	sum := make([]float32, len(x))
	for i := range x {
		sum[i] = first[i] + x[i]
	}
	copy(x, sum)
	done <- sum
	return nil
}

// TestAllReduceTwoRanks runs a step on two ranks, each on its half of
// every batch (one micro-batch each), against one process taking both
// halves as two micro-batches. The mean of the two ranks' gradients is
// the accumulated gradient of the two micro-batches with the same
// roundings ((g0 + g1)·½ either way, in float32), so the parameters and
// moments must agree bit for bit, and both ranks must end identical.
func TestAllReduceTwoRanks(t *testing.T) {
	t.Cleanup(func() { runtime.SetHostReducer(nil) })
	const rows, perRun = 4, 2
	dt := tensors.Float32
	whole := lsqFeeds(dt, perRun, 2, rows, 9)
	single := graphtest.Run(t, build(t, lsqSpec(dt, perRun, 2, rows, nil)), whole)

	dp := build(t, lsqSpec(dt, perRun, 1, rows, &train.AllReduce{}))
	// A session runs one call at a time: one session per rank.
	sessions := []*runtime.Session{graphtest.Session(t, dp), graphtest.Session(t, dp)}
	runtime.SetHostReducer(&pair{})
	outs := make([]map[string]*tensors.Tensor, 2)
	errs := make([]error, 2)
	var wg sync.WaitGroup
	for r := range 2 {
		feeds := rankFeeds(whole, r, perRun, rows)
		wg.Add(1)
		go func() {
			defer wg.Done()
			outs[r], errs[r] = runNamed(sessions[r], feeds)
		}()
	}
	wg.Wait()
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
	}
	for name := range single {
		if !shared(name) {
			continue
		}
		for r := range 2 {
			if string(outs[r][name].Data) != string(single[name].Data) {
				t.Errorf("rank %d: %s = %v, want %v bit for bit", r, name, outs[r][name], single[name])
			}
		}
	}
	if w := outs[0][train.New("w")].Float32s(); !(math.Abs(float64(w[0])-0.3) <= 0.1) {
		t.Fatalf("w[0] = %v after %d steps from 0.3", w[0], perRun)
	}
}

// rankFeeds are rank r's inputs of two: whole's, with micro-batch r of
// each step of whole's batch [S, 2, rows, nIn+1] as its batch [S, 1, rows,
// nIn+1].
func rankFeeds(whole map[string]*tensors.Tensor, r, perRun, rows int) map[string]*tensors.Tensor {
	feeds := map[string]*tensors.Tensor{}
	for n, v := range whole {
		feeds[n] = v
	}
	per := rows * (nIn + 1)
	all := whole[train.BatchName].Float32s()
	var mine []float32
	for st := range perRun {
		at := (st*2 + r) * per
		mine = append(mine, all[at:at+per]...)
	}
	feeds[train.BatchName] = tensors.FromFloat32([]int64{int64(perRun), 1, int64(rows), nIn + 1}, mine)
	return feeds
}

// shared reports whether a step output is the same on every rank: all
// but the losses.
func shared(name string) bool { return name != train.LossName }

// runNamed runs s with feeds by input name and returns its outputs by
// name, as graphtest.RunSession does, without a *testing.T (it runs on
// another goroutine).
func runNamed(s *runtime.Session, feeds map[string]*tensors.Tensor) (map[string]*tensors.Tensor, error) {
	var in []*tensors.Tensor
	for _, n := range s.InputNames() {
		in = append(in, feeds[n])
	}
	out, err := s.Run(in)
	if err != nil {
		return nil, err
	}
	m := map[string]*tensors.Tensor{}
	for i, n := range s.OutputNames() {
		m[n] = out[i]
	}
	return m, nil
}

// TestAllReduceNCCLOneRank runs on a GPU machine only (MOHAWK_TEST_CUDA=1,
// with NCCL where runtime.FindNCCL looks): with a one-rank NCCL
// communicator, the step graph's AllReduce nodes call ncclAllReduce on
// the CUDA provider's stream, and its outputs must equal the plain step's
// bit for bit.
func TestAllReduceNCCLOneRank(t *testing.T) {
	env := graphtest.CUDAEnv(t)
	nccl, err := runtime.LoadNCCL()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("NCCL %s from %s", nccl.Version(), nccl.Path())
	id, err := nccl.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	comm, err := nccl.NewComm(id, 0, 1, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := comm.Close(); err != nil {
			t.Error(err)
		}
	}()
	if err := comm.Use(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		perRun, k   int
		bucketBytes int64
	}{{1, 1, 0}, {3, 2, 0}, {2, 2, 1 << 20}} {
		t.Run(fmt.Sprintf("S%d/K%d/bucket%d", c.perRun, c.k, c.bucketBytes), func(t *testing.T) {
			const rows = 4
			dt := tensors.Float32
			plain := build(t, lsqSpec(dt, c.perRun, c.k, rows, nil))
			dp := build(t, lsqSpec(dt, c.perRun, c.k, rows, &train.AllReduce{BucketBytes: c.bucketBytes}))
			feeds := lsqFeeds(dt, c.perRun, c.k, rows, 5)
			want := graphtest.RunSession(t, graphtest.SessionOn(t, env, plain), plain, feeds)
			got := graphtest.RunSession(t, graphtest.SessionOn(t, env, dp), dp, feeds)
			sameOutputs(t, "NCCL, one rank", got, want)
			if err := comm.AsyncError(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// childRank is set in the child processes of TestAllReduceNCCLTwoGPUs to
// "rank hex-id output-file".
const childRank = "MOHAWK_TRAIN_TEST_NCCL_RANK"

// TestAllReduceNCCLTwoGPUs runs on a machine with two GPUs only
// (MOHAWK_TEST_CUDA=1; nvidia-smi lists them): two processes, one per GPU
// (CUDA_VISIBLE_DEVICES), join one NCCL communicator and run the
// two-rank step of TestAllReduceTwoRanks; both ranks must end with the
// same state bit for bit, equal to one process's two micro-batches
// within float32 rounding (bit for bit as well, logged, where the GPU
// computes each micro-batch's gradient alike in and out of the Loop).
func TestAllReduceNCCLTwoGPUs(t *testing.T) {
	graphtest.CUDAEnv(t) // skips without MOHAWK_TEST_CUDA
	list, err := exec.Command("nvidia-smi", "-L").Output()
	if n := strings.Count(string(list), "GPU "); err != nil || n < 2 {
		t.Skipf("needs two GPUs; nvidia-smi -L: %d GPUs, %v", n, err)
	}
	nccl, err := runtime.LoadNCCL()
	if err != nil {
		t.Fatal(err)
	}
	id, err := nccl.UniqueID()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmds := make([]*exec.Cmd, 2)
	outs := make([]*bytes.Buffer, 2)
	for r := range 2 {
		cmds[r] = exec.Command(os.Args[0], "-test.run=^TestChildNCCLRank$", "-test.v")
		cmds[r].Env = append(os.Environ(), fmt.Sprintf("CUDA_VISIBLE_DEVICES=%d", r),
			fmt.Sprintf("%s=%d %s %s", childRank, r, hex.EncodeToString(id[:]), filepath.Join(dir, fmt.Sprint(r))))
		outs[r] = &bytes.Buffer{}
		cmds[r].Stdout, cmds[r].Stderr = outs[r], outs[r]
		if err := cmds[r].Start(); err != nil {
			t.Fatal(err)
		}
	}
	for r, c := range cmds {
		if err := c.Wait(); err != nil || !strings.Contains(outs[r].String(), "--- PASS: TestChildNCCLRank") {
			t.Fatalf("rank %d: %v\n%s", r, err, outs[r])
		}
	}
	got := make([]map[string][]byte, 2)
	for r := range 2 {
		f, err := os.Open(filepath.Join(dir, fmt.Sprint(r)))
		if err != nil {
			t.Fatal(err)
		}
		err = gob.NewDecoder(f).Decode(&got[r])
		f.Close()
		if err != nil {
			t.Fatal(err)
		}
	}
	const rows, perRun = 4, 2
	whole := lsqFeeds(tensors.Float32, perRun, 2, rows, 9)
	plain := build(t, lsqSpec(tensors.Float32, perRun, 2, rows, nil))
	single := graphtest.RunSession(t, graphtest.SessionOn(t, graphtest.CUDAEnv(t), plain), plain, whole)
	bitwise := true
	for name, want := range single {
		if !shared(name) {
			continue
		}
		if string(got[0][name]) != string(got[1][name]) {
			t.Errorf("%s differs between the ranks", name)
		}
		if name == train.FiniteName {
			bitwise = bitwise && string(got[0][name]) == string(want.Data)
			continue
		}
		g := tensors.Tensor{DType: tensors.Float32, Shape: want.Shape, Data: got[0][name]}
		for i, w := range want.Float32s() {
			v := g.Float32s()[i]
			bitwise = bitwise && math.Float32bits(v) == math.Float32bits(w)
			if d := math.Abs(float64(v - w)); !(d <= 1e-6*math.Abs(float64(w))+1e-12) {
				t.Errorf("%s[%d]: two GPUs %g, one process %g", name, i, v, w)
			}
		}
	}
	t.Logf("two GPUs against one process's two micro-batches: bit for bit %v", bitwise)
}

// TestChildNCCLRank is one rank of TestAllReduceNCCLTwoGPUs.
func TestChildNCCLRank(t *testing.T) {
	spec := os.Getenv(childRank)
	if spec == "" {
		t.Skip("runs only as a child process of TestAllReduceNCCLTwoGPUs")
	}
	var rank int
	var hexID, out string
	if _, err := fmt.Sscan(spec, &rank, &hexID, &out); err != nil {
		t.Fatalf("%s=%q: %v", childRank, spec, err)
	}
	raw, err := hex.DecodeString(hexID)
	if err != nil {
		t.Fatal(err)
	}
	id, err := runtime.ParseNCCLID(raw)
	if err != nil {
		t.Fatal(err)
	}
	env := graphtest.CUDAEnv(t)
	nccl, err := runtime.LoadNCCL()
	if err != nil {
		t.Fatal(err)
	}
	comm, err := nccl.NewComm(id, rank, 2, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer comm.Close()
	if err := comm.Use(); err != nil {
		t.Fatal(err)
	}
	const rows, perRun = 4, 2
	whole := lsqFeeds(tensors.Float32, perRun, 2, rows, 9)
	dp := build(t, lsqSpec(tensors.Float32, perRun, 1, rows, &train.AllReduce{}))
	res := graphtest.RunSession(t, graphtest.SessionOn(t, env, dp), dp, rankFeeds(whole, rank, perRun, rows))
	if err := comm.AsyncError(); err != nil {
		t.Fatal(err)
	}
	state := map[string][]byte{}
	for n, v := range res {
		state[n] = v.Data
	}
	f, err := os.Create(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := gob.NewEncoder(f).Encode(state); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}
