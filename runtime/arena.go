package runtime

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	ort "github.com/yalue/onnxruntime_go"
)

// ErrNoArenaStats is returned (wrapped) when a session's allocator keeps no
// statistics, or not the ones ArenaStats reports.
var ErrNoArenaStats = errors.New("no arena statistics")

// ArenaStats are the statistics of the memory arena a session allocates
// its tensors from in the provider's memory: GPU memory under the cuda and
// tensorrt providers, host memory under cpu. All are counted since the
// session was created. Memory the arena has reserved but not handed out
// (TotalAllocated − InUse) is what a device-wide figure such as
// nvidia-smi's counts as used although no tensor holds it.
type ArenaStats struct {
	// Limit is the most bytes the arena may reserve; -1 without a cap.
	Limit int64
	// InUse is the bytes handed out to tensors and not yet given back.
	InUse int64
	// MaxInUse is the peak of InUse.
	MaxInUse int64
	// TotalAllocated is the bytes the arena holds reserved from the device.
	TotalAllocated int64
	// NumAllocs is the number of allocations served.
	NumAllocs int64
	// NumArenaExtensions is how often the arena reserved more memory.
	NumArenaExtensions int64
	// MaxAllocSize is the largest single allocation.
	MaxAllocSize int64
}

// SessionArena is the arena statistics of one session of an Env.
type SessionArena struct {
	Session string // the session's name
	// Open is true when the session was still open when they were read.
	Open  bool
	Stats ArenaStats
	// Err is why there are no statistics (errors.Is ErrNoArenaStats when
	// the allocator keeps none); Stats is zero then.
	Err error
}

// arenaKeys are the keys of ORT's allocator statistics (OrtAllocator's
// GetStats) that ArenaStats reports, with the field each one fills.
var arenaKeys = []struct {
	key   string
	field func(*ArenaStats) *int64
}{
	{"Limit", func(a *ArenaStats) *int64 { return &a.Limit }},
	{"InUse", func(a *ArenaStats) *int64 { return &a.InUse }},
	{"MaxInUse", func(a *ArenaStats) *int64 { return &a.MaxInUse }},
	{"TotalAllocated", func(a *ArenaStats) *int64 { return &a.TotalAllocated }},
	{"NumAllocs", func(a *ArenaStats) *int64 { return &a.NumAllocs }},
	{"NumArenaExtensions", func(a *ArenaStats) *int64 { return &a.NumArenaExtensions }},
	{"MaxAllocSize", func(a *ArenaStats) *int64 { return &a.MaxAllocSize }},
}

// parseArenaStats fills ArenaStats from the allocator's key → decimal
// value pairs. A missing key is ErrNoArenaStats, a value that is not a
// non-negative integer (-1 allowed for Limit) an error naming the key.
func parseArenaStats(pairs map[string]string) (ArenaStats, error) {
	var a ArenaStats
	var missing []string
	for _, k := range arenaKeys {
		v, ok := pairs[k.key]
		if !ok {
			missing = append(missing, k.key)
			continue
		}
		n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
		if err != nil || n < -1 || (n == -1 && k.key != "Limit") {
			return ArenaStats{}, fmt.Errorf("allocator statistic %s is %q, not a byte or event count", k.key, v)
		}
		*k.field(&a) = n
	}
	if len(missing) > 0 {
		have := slices.Sorted(maps.Keys(pairs))
		return ArenaStats{}, fmt.Errorf("%w: the allocator reports no %s (it reports %s)", ErrNoArenaStats,
			strings.Join(missing, ", "), cmpOr(strings.Join(have, ", "), "nothing"))
	}
	return a, nil
}

// ArenaStats reads the statistics of the arena the session allocates from
// in its provider's memory (the device given by cuda.device_id or
// tensorrt.device_id). The error wraps ErrNoArenaStats when that allocator
// keeps none, e.g. when the arena is turned off.
func (s *Session) ArenaStats() (ArenaStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ort == nil {
		return ArenaStats{}, fmt.Errorf("session %q: arena statistics: the session is closed", s.name)
	}
	return s.readArena(s.ort)
}

// readArena reads the arena statistics of o, the ORT session of s.
func (s *Session) readArena(o *ort.DynamicAdvancedSession) (ArenaStats, error) {
	fail := func(err error) (ArenaStats, error) {
		return ArenaStats{}, fmt.Errorf("session %q: arena statistics: %w", s.name, err)
	}
	if err := loadAPI(s.env.lib); err != nil {
		return fail(err)
	}
	sess, err := ortSessionPointer(o)
	if err != nil {
		return fail(err)
	}
	info, err := memoryInfo(s.env.provider, cfgDeviceID(s.env.cfg, s.env.provider))
	if err != nil {
		return fail(err)
	}
	defer releaseMemoryInfo(info)
	pairs, ok, err := allocatorStats(sess, info)
	if err != nil {
		return fail(fmt.Errorf("%s memory allocator: %v", s.env.provider, err))
	}
	if !ok {
		return fail(fmt.Errorf("%w: the %s memory allocator has no GetStats", ErrNoArenaStats, s.env.provider))
	}
	a, err := parseArenaStats(pairs)
	if err != nil {
		return fail(err)
	}
	return a, nil
}

// maxClosedArenas is how many closed sessions' statistics an Env keeps
// (the latest).
const maxClosedArenas = 1024

// ArenaStats lists the arena statistics of e's sessions: of the sessions
// closed so far (the latest maxClosedArenas), read by Close just before it
// destroyed each, in the order they closed; then of the sessions still
// open, read now (waiting for a run in progress), by name.
func (e *Env) ArenaStats() []SessionArena {
	e.mu.Lock()
	out := slices.Clone(e.arenas)
	open := make([]*Session, 0, len(e.sessions))
	for s := range e.sessions {
		open = append(open, s)
	}
	e.mu.Unlock()
	slices.SortFunc(open, func(a, b *Session) int { return strings.Compare(a.name, b.name) })
	for _, s := range open {
		s.mu.Lock()
		if s.ort != nil { // not closed meanwhile (Close recorded it then)
			a, err := s.readArena(s.ort)
			out = append(out, SessionArena{Session: s.name, Open: true, Stats: a, Err: err})
		}
		s.mu.Unlock()
	}
	return out
}
