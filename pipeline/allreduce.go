package pipeline

import (
	"fmt"

	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// All-reduce modes of a one-process run (StageBenchOptions.AllReduce):
// step graphs with AllReduce nodes over a group of one rank, which must
// give the plain step's results bit for bit, to measure what the nodes
// cost.
const (
	AllReduceNone = ""     // no AllReduce nodes
	AllReduceHost = "host" // the CPU kernel with runtime.SingleRank
	AllReduceNCCL = "nccl" // the CUDA kernel with a one-rank NCCL communicator
)

// oneRankAllReduce registers a group of one rank for mode (on CUDA device
// device for NCCL) and returns the step graphs' option, nil for
// AllReduceNone, and a func that releases the group. dtype is "fp32" or ""
// (the parameters' dtype) or "bf16"; bucketMB is train.AllReduce's
// BucketBytes in MiB.
func oneRankAllReduce(mode, dtype string, bucketMB float64, device int) (*train.AllReduce, func() error, error) {
	none := func() error { return nil }
	if mode == AllReduceNone {
		return nil, none, nil
	}
	a := &train.AllReduce{BucketBytes: int64(bucketMB * (1 << 20))}
	switch dtype {
	case "", "fp32":
	case "bf16":
		a.DType = tensors.BFloat16
	default:
		return nil, nil, fmt.Errorf("all-reduce dtype %q: want fp32 or bf16", dtype)
	}
	if bucketMB < 0 {
		return nil, nil, fmt.Errorf("all-reduce bucket %g MiB: want ≥ 0", bucketMB)
	}
	switch mode {
	case AllReduceHost:
		runtime.SetHostReducer(runtime.SingleRank{})
		return a, func() error { runtime.SetHostReducer(nil); return nil }, nil
	case AllReduceNCCL:
		nccl, err := runtime.LoadNCCL()
		if err != nil {
			return nil, nil, err
		}
		id, err := nccl.UniqueID()
		if err != nil {
			return nil, nil, err
		}
		comm, err := nccl.NewComm(id, 0, 1, device)
		if err != nil {
			return nil, nil, err
		}
		if err := comm.Use(); err != nil {
			comm.Close()
			return nil, nil, err
		}
		return a, comm.Close, nil
	}
	return nil, nil, fmt.Errorf("all-reduce %q: want none, host or nccl", mode)
}
