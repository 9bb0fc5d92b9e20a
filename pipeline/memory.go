package pipeline

import (
	"fmt"
	"os"
	gc "runtime"
	"sort"
	"strconv"
	"strings"

	"mohawk/export"
	"mohawk/graphs"
	"mohawk/graphs/models/family"
	"mohawk/graphs/train"
	"mohawk/runtime"
	"mohawk/tensors"
)

// MemoryRow is one kind of tensor live at a step graph's peak.
type MemoryRow struct {
	Kind  string `json:"kind"`
	Count int    `json:"count"`
	Bytes int64  `json:"bytes"`
}

// MemoryResult is the liveness analysis of a stage's step graph
// (graphs.AnalyzeLiveness): the largest set of tensors live at once.
type MemoryResult struct {
	StageBenchOptions
	Nodes int `json:"nodes"`
	// PeakBytes is the node outputs live at the peak; ResidentBytes the
	// graph's inputs (parameters, moments, batch) and initializers (the
	// frozen teacher and student weights, constants); TotalBytes both.
	PeakBytes     int64       `json:"peak_bytes"`
	ResidentBytes int64       `json:"resident_bytes"`
	TotalBytes    int64       `json:"total_bytes"`
	PeakNode      string      `json:"peak_node"` // op and shapes of the node running at the peak
	PeakPhase     string      `json:"peak_phase"`
	Rows          []MemoryRow `json:"rows"` // largest first
	// MeasuredBytes is the rise of resident memory during one run
	// (MeasureStageMemory), 0 when not measured.
	MeasuredBytes int64 `json:"measured_bytes,omitempty"`
	// ArenaPeakBytes and ArenaReservedBytes are ONNX Runtime's own count
	// for that run (runtime.ArenaStats of the step's session, in the
	// provider's memory: the GPU's under cuda): the peak bytes its
	// tensors held, and what its arena reserved.
	ArenaPeakBytes     int64 `json:"arena_peak_bytes,omitempty"`
	ArenaReservedBytes int64 `json:"arena_reserved_bytes,omitempty"`
}

// StageMemory builds o's Stage 3 step graph without a runtime (as
// StageTraffic does) and reports its liveness peak, the live tensors
// grouped by phase (saved by the forward pass for the backward, or made
// by the backward) and kind (shape class).
func StageMemory(o StageBenchOptions) (*MemoryResult, error) {
	g, tc, err := benchStepGraph(o, "--memory", KindDistill)
	if err != nil {
		return nil, err
	}
	return stepMemory(g, tc, o), nil
}

// stepMemory analyses the step graph g of a model shaped like tc.
func stepMemory(g *graphs.Graph, tc family.TeacherSizes, o StageBenchOptions) *MemoryResult {
	l := graphs.AnalyzeLiveness(g)
	r := &MemoryResult{StageBenchOptions: o, Nodes: len(g.AllNodes()), PeakBytes: l.PeakBytes,
		ResidentBytes: l.InputBytes + l.InitBytes, TotalBytes: l.Total()}
	back := g.BackwardStart()
	if l.PeakNode != nil {
		r.PeakNode = l.PeakNode.Op + " " + nodeShapes(l.PeakNode)
		r.PeakPhase = phaseOf(l.PeakIndex, back)
	}
	byKind := map[string]*MemoryRow{}
	index := map[*graphs.Node]int{}
	for i, n := range g.Nodes() {
		index[n] = i
	}
	bt := int64(o.MicroBatch * o.Seq)
	state := map[string]bool{} // the shapes of parameters and moments
	for _, v := range g.Inputs() {
		state[v.Shape.String()] = true
	}
	outs, _ := g.Outputs()
	isOut := map[*graphs.Value]bool{}
	for _, v := range outs {
		isOut[v] = true
	}
	for _, v := range l.Live {
		kind := tensorKind(v, bt, tc)
		switch {
		case isOut[v]:
			kind = "updated parameters and moments (outputs)"
		case state[v.Shape.String()]:
			kind = "parameter-shaped (gradients, weight casts)"
		}
		k := phaseOf(index[v.Node()], back) + " " + kind
		row := byKind[k]
		if row == nil {
			row = &MemoryRow{Kind: k}
			byKind[k] = row
		}
		row.Count++
		row.Bytes += v.Bytes()
	}
	for _, row := range byKind {
		r.Rows = append(r.Rows, *row)
	}
	sort.Slice(r.Rows, func(i, j int) bool {
		if r.Rows[i].Bytes != r.Rows[j].Bytes {
			return r.Rows[i].Bytes > r.Rows[j].Bytes
		}
		return r.Rows[i].Kind < r.Rows[j].Kind
	})
	return r
}

func phaseOf(i, backwardStart int) string {
	if i < backwardStart {
		return "forward (saved)"
	}
	return "backward"
}

// tensorKind classes a tensor of a step over bt tokens by its shape.
func tensorKind(v *graphs.Value, bt int64, tc family.TeacherSizes) string {
	n := v.Shape.NumElements().K
	switch {
	case n == bt*tc.Vocab:
		return "logits-sized [B,T,V]"
	case v.Rank() >= 5:
		return "SSD chunk tensors (rank 5)"
	case n == bt*tc.Intermediate:
		return "MLP-sized [B,T,F]"
	case n == bt*tc.Hidden:
		return "hidden-sized [B,T,D]"
	case n%bt == 0:
		return fmt.Sprintf("per-token [B,T,%d]", n/bt)
	}
	return "other"
}

// MeasureStageMemory is StageMemory plus one run of the step graph on
// o.Runtime's provider (zero weights and state, token 0 throughout: the
// same buffers a real step allocates): MeasuredBytes is how far the
// process's resident memory rose above its level before the run (the
// kernel's high-water mark, reset first), which on the CPU provider is
// ONNX Runtime's arena for the run's buffers and outputs; less the copy of
// the outputs that Run makes in Go memory. ArenaPeakBytes is ORT's own
// peak for the run, on any provider (on a GPU provider the device memory
// is not in the resident figure).
func MeasureStageMemory(o StageBenchOptions) (*MemoryResult, error) {
	g, tc, err := benchStepGraph(o, "--memory", KindDistill)
	if err != nil {
		return nil, err
	}
	r := stepMemory(g, tc, o)
	data, err := export.Marshal(g, export.Options{})
	if err != nil {
		return nil, err
	}
	rt, err := runtime.Open(o.Runtime, nil)
	if err != nil {
		return nil, err
	}
	defer rt.Close()
	var ins []string
	var feeds []*tensors.Tensor
	for _, v := range g.Inputs() {
		ins = append(ins, v.Name())
		t := tensors.Zeros(v.DType, v.Shape.Sizes()...)
		if v.Name() == train.StepName {
			t = tensors.FromFloat64([]int64{1}, []float64{1}).Convert(v.DType)
		}
		feeds = append(feeds, t)
	}
	_, outs := g.Outputs()
	s, err := rt.NewSession(g.Name, data, ins, outs)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	data = nil
	gc.GC()
	// The resident figure needs the kernel's high-water mark reset; where
	// /proc does not allow it, only ORT's own count is reported.
	rss := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
	before := procStatus("VmRSS:")
	res, err := s.Run(feeds)
	if err != nil {
		return nil, err
	}
	// Run copies the outputs into Go memory, which the graph does not hold.
	var copied int64
	for _, t := range res {
		copied += int64(len(t.Data))
	}
	if rss {
		r.MeasuredBytes = procStatus("VmHWM:") - before - copied
	}
	a, err := s.ArenaStats()
	if err != nil {
		return nil, fmt.Errorf("memory: %w", err)
	}
	r.ArenaPeakBytes, r.ArenaReservedBytes = a.MaxInUse, a.TotalAllocated
	return r, nil
}

// procStatus is a /proc/self/status field in bytes (0 if unreadable).
func procStatus(field string) int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == field {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}
