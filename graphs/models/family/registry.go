package family

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"
)

var (
	mu       sync.RWMutex
	families []Family
)

// Register adds a family; a family package calls it from init. It panics
// on a second family of the same name, architecture or model type: two
// packages claiming one checkpoint format is a programming error.
func Register(f Family) {
	mu.Lock()
	defer mu.Unlock()
	for _, o := range families {
		if o.Name() == f.Name() {
			panic(fmt.Sprintf("family: %q registered twice", f.Name()))
		}
		for _, a := range f.Architectures() {
			if slices.Contains(o.Architectures(), a) {
				panic(fmt.Sprintf("family: architecture %s claimed by %s and %s", a, o.Name(), f.Name()))
			}
		}
		for _, m := range f.ModelTypes() {
			if slices.Contains(o.ModelTypes(), m) {
				panic(fmt.Sprintf("family: model_type %s claimed by %s and %s", m, o.Name(), f.Name()))
			}
		}
	}
	families = append(families, f)
}

// All lists the registered families in registration order.
func All() []Family {
	mu.RLock()
	defer mu.RUnlock()
	return slices.Clone(families)
}

// Supported names every architecture (and model_type) a teacher may have.
func Supported() string {
	var arch, types []string
	for _, f := range All() {
		arch = append(arch, f.Architectures()...)
		types = append(types, f.ModelTypes()...)
	}
	if len(arch) == 0 {
		return "none (no family is registered: import mohawk/graphs/models/all)"
	}
	return fmt.Sprintf("%s (model_type %s)", strings.Join(arch, ", "), strings.Join(types, ", "))
}

// ByName is the family registered under name.
func ByName(name string) (Family, error) {
	var names []string
	for _, f := range All() {
		if f.Name() == name {
			return f, nil
		}
		names = append(names, f.Name())
	}
	return nil, fmt.Errorf("model family %q is not registered; registered: %s", name, strings.Join(names, ", "))
}

// teacherKeys is what ForTeacherConfig reads of a config.json.
type teacherKeys struct {
	Architectures []string `json:"architectures"`
	ModelType     string   `json:"model_type"`
}

// ForTeacherConfig is the family of a teacher's config.json (source names
// it in messages): the first of its architectures a family reads, else
// its model_type.
func ForTeacherConfig(data []byte, source string) (Family, error) {
	var k teacherKeys
	if err := json.Unmarshal(data, &k); err != nil {
		return nil, fmt.Errorf("%s: not a config.json object with architectures and model_type: %w", source, err)
	}
	fs := All()
	for _, a := range k.Architectures {
		for _, f := range fs {
			if slices.Contains(f.Architectures(), a) {
				return f, nil
			}
		}
	}
	for _, f := range fs {
		if k.ModelType != "" && slices.Contains(f.ModelTypes(), k.ModelType) {
			return f, nil
		}
	}
	return nil, fmt.Errorf("%s: architectures %v, model_type %q: no registered family reads this teacher; supported: %s",
		source, k.Architectures, k.ModelType, Supported())
}

// ParseTeacher reads a teacher's config.json with its family's parser.
func ParseTeacher(data []byte, source string) (Teacher, error) {
	f, err := ForTeacherConfig(data, source)
	if err != nil {
		return nil, err
	}
	return f.ParseTeacher(data, source)
}

// ForStudentConfig is the family whose student layout config.json has, or
// nil when none (the file may be a teacher's).
func ForStudentConfig(data []byte) Family {
	var raw map[string]json.RawMessage
	if json.Unmarshal(data, &raw) != nil {
		return nil
	}
	keys := map[string]bool{}
	for k := range raw {
		keys[k] = true
	}
	for _, f := range All() {
		if f.IsStudentConfig(keys) {
			return f
		}
	}
	return nil
}

// StudentLayouts names every registered student layout.
func StudentLayouts() string {
	var out []string
	for _, f := range All() {
		out = append(out, f.StudentLayout())
	}
	return strings.Join(out, ", ")
}

// Preset makes a named teacher architecture (for benchmarks on random
// weights) with layers layers, or the preset's own depth for 0.
type Preset func(layers int) Teacher

var presets = map[string]Preset{}

// RegisterPreset names a teacher architecture; a family package calls it
// from init. It panics on a second preset of the same name.
func RegisterPreset(name string, p Preset) {
	mu.Lock()
	defer mu.Unlock()
	if _, ok := presets[name]; ok {
		panic(fmt.Sprintf("family: preset %q registered twice", name))
	}
	presets[name] = p
}

// PresetTeacher is the preset called name with layers layers (0: its
// own), ok=false when there is none.
func PresetTeacher(name string, layers int) (t Teacher, ok bool) {
	mu.RLock()
	p, ok := presets[name]
	mu.RUnlock()
	if !ok {
		return nil, false
	}
	return p(layers), true
}
