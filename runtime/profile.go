package runtime

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"sort"
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

// OpTime is the time ORT spent in one kind of node: an op type on an
// execution provider.
type OpTime struct {
	Op       string  `json:"op"`
	Provider string  `json:"provider"`
	Calls    int     `json:"calls"`
	Millis   float64 `json:"ms"`
	Share    float64 `json:"share"` // of all node time in the profile
}

// controlFlow ops run subgraphs whose nodes the profile lists separately.
var controlFlow = map[string]bool{"Loop": true, "If": true, "Scan": true}

// profileEvent is the part of an ORT profile (Chrome trace) event used here.
type profileEvent struct {
	Cat  string  `json:"cat"`
	Name string  `json:"name"`
	Dur  float64 `json:"dur"` // microseconds
	Args struct {
		OpName   string `json:"op_name"`
		Provider string `json:"provider"`
	} `json:"args"`
}

// SummarizeProfile reads an ORT profile written under Config.ProfileDir and
// returns the node time per op type and provider, largest first. Control
// flow nodes (Loop, If, Scan) are left out: their subgraphs' nodes are
// listed, and counted, themselves.
func SummarizeProfile(path string) ([]OpTime, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var events []profileEvent
	if err := json.Unmarshal(data, &events); err != nil {
		return nil, fmt.Errorf("%s: not an ONNX Runtime profile (a JSON array of trace events): %v", path, err)
	}
	byKey := map[[2]string]*OpTime{}
	total := 0.0
	for _, e := range events {
		if e.Cat != "Node" || !strings.HasSuffix(e.Name, "_kernel_time") || controlFlow[e.Args.OpName] {
			continue // a Loop's or If's time is its body's nodes, counted themselves
		}
		k := [2]string{e.Args.OpName, strings.TrimSuffix(e.Args.Provider, "ExecutionProvider")}
		o := byKey[k]
		if o == nil {
			o = &OpTime{Op: k[0], Provider: k[1]}
			byKey[k] = o
		}
		o.Calls++
		o.Millis += e.Dur / 1000
		total += e.Dur / 1000
	}
	if len(byKey) == 0 {
		return nil, fmt.Errorf("%s: the profile has no node events", path)
	}
	out := make([]OpTime, 0, len(byKey))
	for _, o := range byKey {
		o.Share = o.Millis / total
		out = append(out, *o)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Millis != out[j].Millis {
			return out[i].Millis > out[j].Millis
		}
		return out[i].Op+out[i].Provider < out[j].Op+out[j].Provider
	})
	return out, nil
}
