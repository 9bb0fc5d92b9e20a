package stages

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"

	"mohawk/data"
	"mohawk/export"
	"mohawk/graphs"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
)

// Weights are a model's parameters by name, in host memory.
type Weights map[string]*tensors.Tensor

// Teacher is the frozen teacher: architecture and weights (float32).
type Teacher struct {
	Config  family.Teacher
	Weights Weights
}

// Student is the model being trained; stages replace Weights as they train.
type Student struct {
	Config  family.Student
	Weights Weights
}

// Checkpointer saves and restores a stage's training state. Tensors hold
// parameters and optimizer moments by name; meta is small JSON-able state.
// pipeline implements it (atomic files, checksummed manifests, retention).
type Checkpointer interface {
	Save(step int, t Weights, meta Meta) error
	// Latest returns the newest complete checkpoint, ok=false if none.
	Latest() (step int, t Weights, meta Meta, ok bool, err error)
	// Sub is an independent checkpoint series under a name (one per layer
	// group of a stage).
	Sub(name string) Checkpointer
}

// Meta is the non-tensor part of a checkpoint.
type Meta struct {
	Step        int     `json:"step"`
	Tokens      int64   `json:"tokens"`
	LRFactor    float64 `json:"lr_factor"` // multiplier after rollbacks
	Rollbacks   int     `json:"rollbacks"`
	BestValLoss float64 `json:"best_val_loss"`
	ValLoss     float64 `json:"val_loss"` // at this checkpoint (NaN-free; 0 if not evaluated)
	DataIndex   int64   `json:"data_index"`
	Seed        uint64  `json:"seed"`
}

// Logger receives metrics and status lines.
type Logger interface {
	// Metric records one JSON object (a metrics.jsonl line).
	Metric(m map[string]any)
	// Progress returns a tracker for n steps described by desc.
	Progress(desc string, n int) Progress
	// Printf writes a status line.
	Printf(format string, args ...any)
}

// Progress tracks the steps of a long loop.
type Progress interface {
	Set(step int, status string)
	Done()
}

// Env is what a stage needs: the runtime, the models, the data and where to
// keep its state.
type Env struct {
	Ctx       context.Context
	Runtime   Runtime // ORT(rt) for ONNX Runtime
	Teacher   *Teacher
	Student   *Student
	TrainData *data.Stream
	ValData   *data.Stream
	Seed      uint64
	Dir       string // the stage's directory
	Ckpt      Checkpointer
	Log       Logger
	// NonFinite is "stop" or "rollback" with LR factor and a cap.
	NonFinite        string
	RollbackLRFactor float64
	MaxRollbacks     int
	// StateOnHost copies the parameters and optimizer moments back into
	// host memory after every session run, as plain Session.Run does. The
	// default keeps them resident on the runtime's device between runs and
	// copies them out only for checkpoints, evaluations and the end.
	StateOnHost bool
	// Shard, when set, splits Stages 1 and 2's layer groups among
	// cooperating processes (ranks).
	Shard Shard
	// Replicas, when set with several ranks, makes Train data parallel:
	// this rank runs its share of every step's micro-batches and the step
	// graph averages the gradients over the ranks (see Replicas).
	Replicas Replicas
}

// ErrInterrupted is returned when the context was cancelled; the stage
// saved a checkpoint first, so re-running resumes.
var ErrInterrupted = errors.New("interrupted")

// NonFiniteError reports a NaN/Inf in a training step.
type NonFiniteError struct {
	Stage  string
	Step   int
	Tensor string // first non-finite gradient, or "loss"
	// Rollbacks is set when the rollback policy gave up: the fault came
	// back after this many rollbacks (checkpoints.max_rollbacks).
	Rollbacks int
}

func (e *NonFiniteError) Error() string {
	if e.Rollbacks > 0 {
		return fmt.Sprintf("stage %s: step %d: non-finite value in %s again after %d rollbacks with a lowered learning rate; giving up (checkpoints.max_rollbacks); lower the learning rate", e.Stage, e.Step, e.Tensor, e.Rollbacks)
	}
	return fmt.Sprintf("stage %s: step %d: non-finite value in %s; lower the learning rate, or set checkpoints.on_nonfinite: rollback", e.Stage, e.Step, e.Tensor)
}

// session exports g and opens a runtime session for it. Graphs over
// protobuf's 2 GB limit go through a temporary model.onnx with external data.
func (e *Env) session(g *graphs.Graph) (Session, error) {
	ins := make([]string, len(g.Inputs()))
	for i, v := range g.Inputs() {
		ins[i] = v.Name()
	}
	_, outs := g.Outputs()
	data, err := export.Marshal(g, export.Options{})
	if err == nil {
		return e.Runtime.NewSession(g.Name, data, ins, outs)
	}
	if !errors.Is(err, export.ErrTooLarge) {
		return nil, err
	}
	// ONNX Runtime may map the data file, so it stays until the next run
	// of this stage replaces it.
	dir := filepath.Join(e.Dir, ".graphs", g.Name)
	if err := export.Save(g, dir, export.SaveOptions{External: true}); err != nil {
		return nil, err
	}
	return e.Runtime.NewSessionFromFile(g.Name, filepath.Join(dir, export.ModelFile), ins, outs)
}

// Session is session for callers outside the package (benchmarks).
func (e *Env) Session(g *graphs.Graph) (Session, error) { return e.session(g) }

// build runs a graph builder, converting construction panics to errors.
func build(name string, fn func(g *graphs.Graph)) (*graphs.Graph, error) {
	return buildGraph(name, func() *graphs.Graph {
		g := graphs.New(name)
		fn(g)
		return g
	})
}

// buildGraph runs a builder that makes its own graph (such as train.Build),
// converting construction panics to errors.
func buildGraph(name string, fn func() *graphs.Graph) (g *graphs.Graph, err error) {
	if err := graphs.Try(func() { g = fn() }); err != nil {
		return nil, fmt.Errorf("build %s graph: %w", name, err)
	}
	return g, nil
}

// feeds orders tensors by the graph's inputs.
func feeds(g *graphs.Graph, byName map[string]*tensors.Tensor) ([]*tensors.Tensor, error) {
	out := make([]*tensors.Tensor, len(g.Inputs()))
	for i, v := range g.Inputs() {
		t, ok := byName[v.Name()]
		if !ok {
			return nil, fmt.Errorf("graph %s: no value for input %s", g.Name, v.Name())
		}
		out[i] = t
	}
	return out, nil
}

// RunGraph runs a graph once with inputs by name and returns its outputs by
// name (diagnostics and one-off evaluations).
func (e *Env) RunGraph(g *graphs.Graph, byName map[string]*tensors.Tensor) (map[string]*tensors.Tensor, error) {
	s, err := e.session(g)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	in, err := feeds(g, byName)
	if err != nil {
		return nil, err
	}
	out, err := s.Run(in)
	if err != nil {
		return nil, err
	}
	return outputsByName(g, out), nil
}
