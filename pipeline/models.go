package pipeline

import (
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"mohawk/atomicfile"
	"mohawk/graphs/models/family"
	"mohawk/hfconfig"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/torchpickle"
)

// LoadTeacher reads a Hugging Face checkpoint directory of any registered
// family (package family): config.json and (possibly sharded)
// safetensors, converted to float32. The checkpoint must hold exactly the
// tensors the config implies, with their shapes (checkTensors); errors
// name the file and the tensors.
func LoadTeacher(dir string) (*stages.Teacher, error) {
	c, err := LoadTeacherConfig(dir)
	if err != nil {
		return nil, err
	}
	set, err := safetensors.OpenFileOrDir(dir)
	if err != nil {
		return nil, fmt.Errorf("load teacher weights: %w", err)
	}
	defer set.Close()
	if err := checkTeacherSet(dir, set, c); err != nil {
		return nil, fmt.Errorf("load teacher weights: %w", err)
	}
	w := stages.Weights{}
	for name := range c.ParamShapes() {
		t, err := set.Tensor(name)
		if err != nil {
			return nil, fmt.Errorf("load teacher weights: %w", err)
		}
		w[name] = t.AsFloat32()
	}
	if err := checkWeightsFinite(dir, "teacher", w); err != nil {
		return nil, err
	}
	return &stages.Teacher{Config: c, Weights: w}, nil
}

// LoadTeacherConfig reads a teacher's config.json (path is the file or
// its directory) with the parser of the family its architectures name.
func LoadTeacherConfig(path string) (family.Teacher, error) {
	data, path, err := hfconfig.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return family.ParseTeacher(data, path)
}

// checkTeacherSet applies checkTensors to a Hugging Face checkpoint
// without reading its weights.
func checkTeacherSet(dir string, set *safetensors.Set, c family.Teacher) error {
	// The layer count first: it sizes ParamShapes below (10^9 layers would
	// list 10^10 tensors before any comparison).
	layers := c.Sizes().Layers
	prefix := strings.TrimSuffix(c.LayerPrefix(0), "0")
	if err := hfconfig.CheckLayers(filepath.Join(dir, hfconfig.FileName), "num_hidden_layers", layers, set.Names(), prefix); err != nil {
		return err
	}
	have := map[string][]int64{}
	for _, name := range set.Names() {
		info, err := set.Info(name)
		if err != nil {
			return err
		}
		have[name] = info.Shape
	}
	want := map[string][]int64{}
	for name, s := range c.ParamShapes() {
		want[name] = s.Sizes()
	}
	return checkTensors(dir, have, want, "teacher", layerNaming{Prefix: prefix, Key: "num_hidden_layers", Layers: layers})
}

func sortedNames[T any](m map[string]T) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// StudentFiles are the names of a student checkpoint directory.
const (
	StudentWeightsFile = "model.safetensors"
	StudentConfigFile  = "config.json"
	TorchWeightsFile   = "pytorch_model.bin"
)

// LoadStudent reads a student directory of any registered family:
// config.json in its layout plus model.safetensors (mohawk) or
// pytorch_model.bin (the authors' save). The family parses the config,
// taking sizes it omits from the weights and eps (the norm epsilon, for
// layouts without one) from the caller.
func LoadStudent(dir string, eps float32) (*stages.Student, error) {
	st := filepath.Join(dir, StudentWeightsFile)
	pt := filepath.Join(dir, TorchWeightsFile)
	var all map[string]*tensors.Tensor
	source := st
	switch {
	case exists(st):
		set, err := safetensors.OpenFileOrDir(st)
		if err != nil {
			return nil, fmt.Errorf("load student: %w", err)
		}
		all = map[string]*tensors.Tensor{}
		for _, n := range set.Names() {
			t, err := set.Tensor(n)
			if err != nil {
				set.Close()
				return nil, fmt.Errorf("load student: %w", err)
			}
			all[n] = t
		}
		set.Close()
	case exists(pt):
		source = pt
		var err error
		if all, err = torchpickle.Load(pt); err != nil {
			return nil, fmt.Errorf("load student: %w", err)
		}
	default:
		return nil, fmt.Errorf("load student: %s holds neither %s nor %s", dir, StudentWeightsFile, TorchWeightsFile)
	}
	have := map[string][]int64{}
	for name, t := range all {
		have[name] = t.Shape
	}
	c, err := loadStudentConfig(dir, have, eps)
	if err != nil {
		return nil, err
	}
	layers, prefix := c.Sizes().Layers, strings.TrimSuffix(c.LayerPrefix(0), "0")
	if err := hfconfig.CheckLayers(filepath.Join(dir, StudentConfigFile), c.LayersKey(), layers, slices.Collect(maps.Keys(all)), prefix); err != nil {
		return nil, err
	}
	ln := layerNaming{Prefix: prefix, Key: c.LayersKey(), Layers: layers}
	if err := checkTensors(source, have, c.ParamShapes(), "student", ln); err != nil {
		return nil, fmt.Errorf("load student: %w", err)
	}
	w := stages.Weights{}
	for name := range c.ParamShapes() {
		w[name] = all[name].AsFloat32()
	}
	if err := checkWeightsFinite(dir, "student", w); err != nil {
		return nil, err
	}
	return &stages.Student{Config: c, Weights: w}, nil
}

// loadStudentConfig reads dir/config.json with the parser of the
// registered family whose student layout it has; shapes are the weights'.
func loadStudentConfig(dir string, shapes map[string][]int64, eps float32) (family.Student, error) {
	path := filepath.Join(dir, StudentConfigFile)
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read student config: %w", err)
	}
	f := family.ForStudentConfig(data)
	if f == nil {
		return nil, fmt.Errorf("%s: not a student config of any registered layout (%s)", path, family.StudentLayouts())
	}
	return f.ParseStudent(data, path, shapes, eps)
}

// checkWeightsFinite names the first tensor of a model's weights (in name
// order) holding a NaN or ±Inf: such a model's outputs are not finite, which
// a training stage would otherwise report as a loss to lower the learning
// rate for, and eval as perplexity NaN.
func checkWeightsFinite(dir, what string, w stages.Weights) error {
	for _, n := range sortedNames(w) {
		if i := firstNonFiniteElement(w[n]); i >= 0 {
			return fmt.Errorf("load %s: %s: tensor %s holds a non-finite value (element %d), so the %s's outputs are not finite; the weights are damaged or come from a diverged run: use a checkpoint whose weights are finite",
				what, dir, n, i, what)
		}
	}
	return nil
}

// SaveStudent writes dir/model.safetensors and dir/config.json (authors'
// layout), atomically each, weights first.
func SaveStudent(dir string, s *stages.Student) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var named []safetensors.Named
	for _, n := range sortedNames(s.Weights) {
		named = append(named, safetensors.Named{Name: n, T: s.Weights[n]})
	}
	if err := safetensors.Write(filepath.Join(dir, StudentWeightsFile), named, map[string]string{"format": "pt", "producer": "mohawk"}); err != nil {
		return err
	}
	cfg, err := s.Config.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, StudentConfigFile), cfg)
}

// SaveTeacher writes a Hugging Face directory (config.json and
// model.safetensors in dtype: float32 or float16) for a teacher made by a
// pretrain stage.
func SaveTeacher(dir string, t *stages.Teacher, dtype tensors.DType) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var named []safetensors.Named
	for _, n := range sortedNames(t.Weights) {
		named = append(named, safetensors.Named{Name: n, T: t.Weights[n].Convert(dtype)})
	}
	cfg, err := t.Config.MarshalHF(dtype)
	if err != nil {
		return err
	}
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), named, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, hfconfig.FileName), cfg)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
