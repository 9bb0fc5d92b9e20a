package pipeline

import (
	"context"
	"io"
	"path/filepath"
	"reflect"
	"testing"
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
			o := StageBenchOptions{Teacher: teacher, Stage: stage, MicroBatch: 2, Seq: 16, MicroBatches: 2, StepsPerRun: 2, Runs: 2}
			res, err := BenchStage(context.Background(), o, io.Discard)
			if err != nil {
				t.Fatal(err)
			}
			o.StateOnHost = true
			host, err := BenchStage(context.Background(), o, io.Discard)
			if err != nil {
				t.Fatal(err)
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
		})
	}
}
