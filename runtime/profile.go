package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
)

// profilePrefix is the file prefix of a session's ORT profile: ORT appends
// the date and ".json".
func profilePrefix(dir, session string) string {
	name := strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == ' ' || r < ' ' {
			return '_'
		}
		return r
	}, session)
	return filepath.Join(dir, name)
}

// Tally is node time summed over the model runs counted: calls, time
// and bytes (inputs and outputs, as ORT reports their sizes).
type Tally struct {
	Calls  int     `json:"calls"`
	Millis float64 `json:"ms"`
	Bytes  int64   `json:"bytes"`
}

func (t *Tally) add(ms float64, bytes int64) {
	t.Calls++
	t.Millis += ms
	t.Bytes += bytes
}

// GBps is the bytes moved per second of the time (inputs read and outputs
// written once each), in GB/s.
func (t Tally) GBps() float64 {
	if t.Millis == 0 {
		return 0
	}
	return float64(t.Bytes) / (t.Millis * 1e6)
}

// OpTime is the time ORT spent in one kind of node: an op type on an
// execution provider.
type OpTime struct {
	Op       string `json:"op"`
	Provider string `json:"provider"`
	Tally
	Share float64 `json:"share"` // of all node time counted
}

// NodeTime is one node's time.
type NodeTime struct {
	Node string `json:"node"`
	Op   string `json:"op"`
	Tally
	Outputs string `json:"outputs"` // output dtypes and shapes
}

// ShapeTime is the time of the nodes of one op type that saw the same
// input and output shapes: the unit in which a slow kernel shows (one op
// type is fast on most shapes).
type ShapeTime struct {
	Op string `json:"op"`
	Tally
	Shapes string `json:"shapes"` // input dtypes and shapes → output ones
}

// Timeline is the host's side of the model runs counted, per run on
// average. Without CUDA_LAUNCH_BLOCKING a GPU node's time is its host time
// (the kernel launches), so a run whose host time in nodes nearly fills it
// is bound by the host, and Wait, the time from the last node's end to the
// run's end, is the host waiting for the GPU to finish the queued work.
type Timeline struct {
	RunMillis  float64 `json:"run_ms"`  // the run, start to end
	HostMillis float64 `json:"host_ms"` // the host in nodes (control flow nodes' own time left out)
	WaitMillis float64 `json:"wait_ms"` // after the last node ended
}

// Profile is the summary of one ORT profile.
type Profile struct {
	Runs     int         `json:"runs"`    // model runs in the file
	Skipped  int         `json:"skipped"` // leading runs left out (warm-up)
	Timeline Timeline    `json:"timeline"`
	Ops      []OpTime    `json:"ops"`    // per op type and provider, largest first
	Nodes    []NodeTime  `json:"nodes"`  // per node, largest first
	Shapes   []ShapeTime `json:"shapes"` // per op type and shapes, largest first
}

// controlFlow ops run subgraphs whose nodes the profile lists separately.
var controlFlow = map[string]bool{"Loop": true, "If": true, "Scan": true}

// profileEvent is the part of an ORT profile (Chrome trace) event used here.
type profileEvent struct {
	Cat  string  `json:"cat"`
	Name string  `json:"name"`
	TS   float64 `json:"ts"`  // microseconds
	Dur  float64 `json:"dur"` // microseconds
	Args struct {
		OpName     string            `json:"op_name"`
		Provider   string            `json:"provider"`
		Activation string            `json:"activation_size"`
		Parameter  string            `json:"parameter_size"`
		Output     string            `json:"output_size"`
		InShapes   []json.RawMessage `json:"input_type_shape"`
		OutShapes  []json.RawMessage `json:"output_type_shape"`
	} `json:"args"`
}

func (e *profileEvent) bytes() int64 {
	var n int64
	for _, s := range []string{e.Args.Activation, e.Args.Parameter, e.Args.Output} {
		v, _ := strconv.ParseInt(s, 10, 64)
		n += v
	}
	return n
}

func (e *profileEvent) outputs() string { return typeShapes(e.Args.OutShapes) }

// typeShapes writes ORT's {"float":[4,2048]} entries as float:[4,2048].
func typeShapes(list []json.RawMessage) string {
	parts := make([]string, len(list))
	for i, s := range list {
		parts[i] = strings.NewReplacer(`"`, "", "{", "", "}", "").Replace(string(s))
	}
	return strings.Join(parts, " ")
}

// SummarizeProfile reads an ORT profile written under Config.ProfileDir and
// sums node time per op type and provider and per node, leaving out the
// nodes of the first skip model runs (warm-up: allocation, cuDNN's
// algorithm search). Control flow nodes (Loop, If, Scan) are left out:
// their subgraphs' nodes are listed, and counted, themselves.
func SummarizeProfile(path string, skip int) (*Profile, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var events []profileEvent
	if err := json.Unmarshal(data, &events); err != nil {
		return nil, fmt.Errorf("%s: not an ONNX Runtime profile (a JSON array of trace events): %v", path, err)
	}
	var runs []profileEvent
	for _, e := range events {
		if e.Cat == "Session" && e.Name == "model_run" {
			runs = append(runs, e)
		}
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].TS < runs[j].TS })
	if skip < 0 || (skip > 0 && skip >= len(runs)) {
		return nil, fmt.Errorf("%s: cannot skip %d of its %d model runs: profile more runs or skip fewer", path, skip, len(runs))
	}
	from := -1.0
	if skip > 0 {
		from = runs[skip].TS
	}
	p := &Profile{Runs: len(runs), Skipped: skip}
	lastEnd := make([]float64, len(runs)) // per run: the latest node end
	runOf := func(ts float64) int {       // the run whose span holds ts, or −1
		i := sort.Search(len(runs), func(i int) bool { return runs[i].TS > ts }) - 1
		if i < 0 || ts > runs[i].TS+runs[i].Dur {
			return -1
		}
		return i
	}
	byKey := map[[2]string]*OpTime{}
	byNode := map[string]*NodeTime{}
	byShape := map[[2]string]*ShapeTime{}
	total := 0.0
	for i := range events {
		e := &events[i]
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") || controlFlow[e.Args.OpName] || e.TS < from {
			continue // a Loop's or If's time is its body's nodes, counted themselves
		}
		k := [2]string{e.Args.OpName, strings.TrimSuffix(e.Args.Provider, "ExecutionProvider")}
		o := byKey[k]
		if o == nil {
			o = &OpTime{Op: k[0], Provider: k[1]}
			byKey[k] = o
		}
		ms, b := e.Dur/1000, e.bytes()
		o.add(ms, b)
		total += ms
		if r := runOf(e.TS); r >= 0 {
			lastEnd[r] = max(lastEnd[r], e.TS+e.Dur)
		}
		name := strings.TrimSuffix(e.Name, "_kernel_time")
		n := byNode[name]
		if n == nil {
			n = &NodeTime{Node: name, Op: k[0], Outputs: e.outputs()}
			byNode[name] = n
		}
		n.add(ms, b)
		sk := [2]string{k[0], typeShapes(e.Args.InShapes) + " → " + n.Outputs}
		g := byShape[sk]
		if g == nil {
			g = &ShapeTime{Op: sk[0], Shapes: sk[1]}
			byShape[sk] = g
		}
		g.add(ms, b)
	}
	if len(byKey) == 0 {
		return nil, fmt.Errorf("%s: the profile has no node events", path)
	}
	if counted := float64(len(runs) - skip); counted > 0 {
		for i, r := range runs[skip:] {
			p.Timeline.RunMillis += r.Dur / 1000 / counted
			if end := lastEnd[skip+i]; end > 0 {
				p.Timeline.WaitMillis += (r.TS + r.Dur - end) / 1000 / counted
			}
		}
		p.Timeline.HostMillis = total / counted
	}
	for _, o := range byKey {
		o.Share = o.Millis / total
		p.Ops = append(p.Ops, *o)
	}
	largestFirst(p.Ops, func(o OpTime) (Tally, string) { return o.Tally, o.Op + o.Provider })
	for _, n := range byNode {
		p.Nodes = append(p.Nodes, *n)
	}
	largestFirst(p.Nodes, func(n NodeTime) (Tally, string) { return n.Tally, n.Node })
	for _, g := range byShape {
		p.Shapes = append(p.Shapes, *g)
	}
	largestFirst(p.Shapes, func(g ShapeTime) (Tally, string) { return g.Tally, g.Op + g.Shapes })
	return p, nil
}

// largestFirst sorts xs by time, largest first, ties by key.
func largestFirst[T any](xs []T, of func(T) (t Tally, key string)) {
	sort.Slice(xs, func(i, j int) bool {
		a, ka := of(xs[i])
		b, kb := of(xs[j])
		if a.Millis != b.Millis {
			return a.Millis > b.Millis
		}
		return ka < kb
	})
}
