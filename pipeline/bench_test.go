package pipeline

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"mohawk/runtime"
)

// TestBenchStageResidentState trains each stage kind for a few runs with
// the state resident between runs and with it copied to the host after
// every run: the losses must be equal bit for bit, and the counted
// host↔device traffic must shrink to the batch and the scalars.
func TestBenchStageResidentState(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny student six times")
	}
	teacher := filepath.Join(demoDir(t), "teacher")
	for _, stage := range []string{KindOrient, KindAlign, KindDistill} {
		t.Run(stage, func(t *testing.T) {
			o := StageBenchOptions{Teacher: teacher, Stage: stage, MicroBatch: 2, Seq: 16, MicroBatches: 2, StepsPerRun: 2, Runs: 1}
			res, err := BenchStage(context.Background(), o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			o.StateOnHost = true
			host, err := BenchStage(context.Background(), o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.RunTokensPerS) != 1 || res.TokensPerS != res.RunTokensPerS[0] || res.TokensPerS <= 0 {
				t.Errorf("one timed run wanted: tokens/s %v of runs %v", res.TokensPerS, res.RunTokensPerS)
			}
			if len(res.Losses) != 6 || !reflect.DeepEqual(res.Losses, host.Losses) {
				t.Errorf("losses differ:\nresident %v\nhost     %v", res.Losses, host.Losses)
			}
			if res.Losses[5] >= res.Losses[0] {
				t.Errorf("loss did not fall: %v", res.Losses)
			}
			batch := int64(8 * o.MicroBatches * o.MicroBatch * (o.Seq + 1))
			if res.HostBytesPerSt < batch || res.HostBytesPerSt > batch+1024 || host.HostBytesPerSt < 100*res.HostBytesPerSt {
				t.Errorf("host bytes per step: resident %d, on host %d (batch %d)", res.HostBytesPerSt, host.HostBytesPerSt, batch)
			}
			t.Logf("%s: host↔device bytes per step %d resident, %d on host; losses %.4f → %.4f", stage,
				res.HostBytesPerSt, host.HostBytesPerSt, res.Losses[0], res.Losses[5])
			checkArena(t, res)
		})
	}
}

// TestBenchStageBF16 trains Stage 3 with bfloat16 products (emulated on
// the CPU provider): the loss falls and tracks the float32 run closely
// without being equal to it.
func TestBenchStageBF16(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny student twice")
	}
	o := StageBenchOptions{Teacher: filepath.Join(demoDir(t), "teacher"), Stage: KindDistill, MicroBatch: 2, Seq: 32,
		MicroBatches: 1, StepsPerRun: 4, Runs: 1}
	fp32, err := BenchStage(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.Precision = "bf16"
	bf16, err := BenchStage(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	n := len(bf16.Losses)
	if n != 12 || !(bf16.Losses[n-1] < bf16.Losses[0]) {
		t.Fatalf("bf16 losses did not fall: %v", bf16.Losses)
	}
	same := true
	for i, l := range bf16.Losses {
		same = same && l == fp32.Losses[i]
		if d := math.Abs(l-fp32.Losses[i]) / fp32.Losses[i]; !(d <= 0.02) {
			t.Errorf("step %d: bf16 loss %.5f, fp32 %.5f (%.2g relative)", i+1, l, fp32.Losses[i], d)
		}
	}
	if same {
		t.Error("bf16 losses equal the fp32 ones: the precision setting had no effect")
	}
	t.Logf("Stage 3 losses: fp32 %.5f → %.5f, bf16 %.5f → %.5f", fp32.Losses[0], fp32.Losses[n-1], bf16.Losses[0], bf16.Losses[n-1])
	o.Precision = "fp8"
	if _, err := BenchStage(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "fp8") {
		t.Errorf("unknown precision: %v", err)
	}
}

// TestBenchStageRejectsNoTimedRun: zero timed runs is an error naming the
// flag, not a zero throughput.
func TestBenchStageRejectsNoTimedRun(t *testing.T) {
	o := StageBenchOptions{Teacher: "phi-1.5:1", Stage: KindDistill, MicroBatch: 1, Seq: 8, StepsPerRun: 1, Runs: 0}
	if _, err := BenchStage(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "--runs 0") {
		t.Errorf("runs 0: %v", err)
	}
}

// TestStageTraffic models the distill step's memory traffic for one- and
// two-layer Phi-1.5 shapes at two lengths: the groups add up to the
// totals, and what a layer moves per token (the mixed difference of the
// four) is at most 3/4 of its fp32 bytes under bf16 (bfloat16 activations
// between products; what grows with the tokens but not the layers is the
// float32 head, what grows with the layers but not the tokens are the
// weights' casts and the optimizer). Stages 1 and 2 are modelled with
// their fused decays; other stages are refused by name.
func TestStageTraffic(t *testing.T) {
	perLayerToken := map[string]float64{}
	for _, prec := range []string{"fp32", "bf16"} {
		for _, layers := range []int{1, 2} {
			for _, seq := range []int{128, 256} {
				r, err := StageTraffic(StageBenchOptions{Teacher: fmt.Sprint("phi-1.5:", layers), Stage: KindDistill, MicroBatch: 1, Seq: seq, Precision: prec})
				if err != nil {
					t.Fatal(err)
				}
				var sum int64
				calls := 0
				for _, row := range r.Rows {
					sum += row.Bytes
					calls += row.Calls
				}
				if sum != r.BytesPerStep || calls != r.Nodes || r.BytesPerStep <= 0 {
					t.Errorf("%s, %d layers, seq %d: rows add up to %d bytes in %d nodes; totals are %d in %d", prec, layers, seq, sum, calls, r.BytesPerStep, r.Nodes)
				}
				sign := float64(1 - 2*((layers+seq/128)%2)) // + for (2, 256) and (1, 128)
				perLayerToken[prec] += sign * float64(r.BytesPerStep) / 128
			}
		}
	}
	fp32, bf16 := perLayerToken["fp32"], perLayerToken["bf16"]
	t.Logf("bytes per layer and token: fp32 %.0f, bf16 %.0f (%.2f)", fp32, bf16, bf16/fp32)
	if bf16 <= 0 || 4*bf16 > 3*fp32 {
		t.Errorf("a bf16 layer moves %.0f bytes per token, an fp32 layer %.0f: want at most 3/4", bf16, fp32)
	}
	// Stages 1 and 2 are modelled too, with their fused kernels: the SSD's
	// and Stage 1's decays, and with training.matrix_kernels Stage 1's
	// distance and the teacher's softmax (then no SegsumExp). Other stages
	// are refused by name.
	for _, c := range []struct {
		stage       string
		matrix      bool
		want, never []string
	}{
		{KindAlign, false, []string{"SegsumExp", "SegsumExpGrad", "AdamWInPlace"}, []string{"MaskedDiffSq", "CausalSoftmax"}},
		{KindOrient, false, []string{"SegsumExp", "SegsumExpGrad", "AdamWInPlace"}, []string{"MaskedDiffSq", "CausalSoftmax"}},
		{KindOrient, true, []string{"MaskedDiffSq", "MaskedDiffSqGrad", "CausalSoftmax", "AdamWInPlace"}, []string{"SegsumExp", "Softmax"}},
	} {
		r, err := StageTraffic(StageBenchOptions{Teacher: "phi-1.5:1", Stage: c.stage, MicroBatch: 1, Seq: 128, Precision: "bf16", MatrixKernels: c.matrix})
		if err != nil {
			t.Fatal(err)
		}
		ops := map[string]int{}
		for _, row := range r.Rows {
			ops[row.Op] += row.Calls
		}
		for _, op := range c.want {
			if ops[op] == 0 {
				t.Errorf("%s, matrix kernels %v: no %s node (nodes by op: %v)", c.stage, c.matrix, op, ops)
			}
		}
		for _, op := range c.never {
			if ops[op] != 0 {
				t.Errorf("%s, matrix kernels %v: %d %s nodes, want none", c.stage, c.matrix, ops[op], op)
			}
		}
	}
	if _, err := StageTraffic(StageBenchOptions{Teacher: "phi-1.5:1", Stage: KindPretrain, MicroBatch: 1, Seq: 128}); err == nil || !strings.Contains(err.Error(), "--stage pretrain") {
		t.Errorf("pretrain: %v; want a refusal naming --stage pretrain", err)
	}
}

// TestBenchStageAllReduce trains Stage 3 with AllReduce nodes over a group
// of one rank (the CPU kernel, per tensor and in one bucket): the losses
// must equal the plain step's bit for bit. NCCL without a GPU, and a bad
// dtype, are errors.
func TestBenchStageAllReduce(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny student three times")
	}
	o := StageBenchOptions{Teacher: filepath.Join(demoDir(t), "teacher"), Stage: KindDistill, MicroBatch: 2, Seq: 16,
		MicroBatches: 2, StepsPerRun: 2, Runs: 1}
	plain, err := BenchStage(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	for _, bucketMB := range []float64{0, 64} {
		o.AllReduce, o.BucketMB = AllReduceHost, bucketMB
		got, err := BenchStage(context.Background(), o, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(got.Losses) != 6 || !reflect.DeepEqual(got.Losses, plain.Losses) {
			t.Errorf("bucket %g MiB: losses with AllReduce %v, without %v", bucketMB, got.Losses, plain.Losses)
		}
	}
	o.AllReduceDType = "fp16"
	if _, err := BenchStage(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), `dtype "fp16"`) {
		t.Errorf("fp16 all-reduce: %v", err)
	}
	o.AllReduce, o.AllReduceDType = AllReduceNCCL, ""
	if _, err := BenchStage(context.Background(), o, io.Discard); err == nil || !strings.Contains(err.Error(), "NCCL") &&
		!strings.Contains(err.Error(), "CUDA") {
		t.Errorf("NCCL on the CPU: %v", err)
	}
}

// TestBenchStageMatrixKernels trains Stage 1 of the demo's student twice,
// with and without training.matrix_kernels (the fused distance and
// softmax, on the CPU provider's kernels): the losses agree to float32
// rounding, and not to the bit (the fused sums run in another order).
func TestBenchStageMatrixKernels(t *testing.T) {
	if testing.Short() {
		t.Skip("trains a tiny student twice")
	}
	o := StageBenchOptions{Teacher: filepath.Join(demoDir(t), "teacher"), Stage: KindOrient, MicroBatch: 2, Seq: 24,
		MicroBatches: 1, StepsPerRun: 2, Runs: 1}
	stock, err := BenchStage(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	o.MatrixKernels = true
	fused, err := BenchStage(context.Background(), o, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(fused.Losses) != len(stock.Losses) || len(stock.Losses) < 4 {
		t.Fatalf("losses %v and %v", fused.Losses, stock.Losses)
	}
	same := true
	for i, l := range stock.Losses {
		if d := math.Abs(fused.Losses[i] - l); !(d <= 1e-4*math.Abs(l)) {
			t.Errorf("loss %d: %.7g with the matrix kernels, %.7g without", i, fused.Losses[i], l)
		}
		same = same && fused.Losses[i] == l
	}
	if same {
		t.Errorf("the losses are equal to the bit (%v): were the matrix kernels used?", stock.Losses)
	}
	t.Logf("losses: fused %v, stock %v", fused.Losses, stock.Losses)
}

// checkArena checks the arena statistics of a CPU bench-stage result: the
// step graph's session closed with statistics whose peak fits in what its
// arena reserved, and its JSON carries them.
func checkArena(t *testing.T, r *StageResult) {
	t.Helper()
	checkSessionArena(t, r.Arena, r.ArenaErrors, fmt.Sprintf("_step%d", r.StepsPerRun), 1)
	b, err := json.Marshal(r)
	if err != nil || !strings.Contains(string(b), `"arena":[{"session":`) || !strings.Contains(string(b), `"max_in_use_bytes":`) ||
		!strings.Contains(string(b), `"reserved_bytes":`) {
		t.Errorf("bench-stage JSON has no arena list: %v %.200s", err, b)
	}
}

// checkSessionArena checks that the closed session whose name ends with
// suffix has arena statistics with a peak of at least minBytes that fits in
// what its arena reserved, and that every session has statistics.
func checkSessionArena(t *testing.T, arena []ArenaUse, errs []string, suffix string, minBytes int64) {
	t.Helper()
	if len(errs) > 0 {
		t.Errorf("sessions without arena statistics: %q", errs)
	}
	found := false
	for _, a := range arena {
		t.Logf("arena %+v", a)
		if strings.HasSuffix(a.Session, suffix) && !a.Open {
			found = a.MaxInUse >= minBytes && a.Reserved >= a.MaxInUse && a.Allocs > 0 && a.MaxAlloc <= a.MaxInUse
		}
	}
	if !found {
		t.Errorf("no closed *%s session with MaxInUse in [%d, reserved] among %+v", suffix, minBytes, arena)
	}
}

// TestBenchForwardArena: the teacher forward's session reports an arena
// peak of at least the [1, seq, vocab] float32 logits it kept resident.
func TestBenchForwardArena(t *testing.T) {
	teacher := filepath.Join(demoDir(t), "teacher")
	tc, err := LoadTeacher(teacher)
	if err != nil {
		t.Fatal(err)
	}
	const seq = 16
	r, err := BenchForward(context.Background(), teacher, ForwardBenchOptions{Batch: 1, Seq: seq, Iters: 1, Precision: "fp32"}, runtime.Config{}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	checkSessionArena(t, r.Arena, r.ArenaErrors, "teacher_forward", seq*tc.Config.Sizes().Vocab*4)
}
