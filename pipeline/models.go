package pipeline

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"

	"mohawk/atomicfile"
	"mohawk/graphs"
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/torchpickle"
)

// LoadTeacher reads a Hugging Face Phi checkpoint directory: config.json
// and (possibly sharded) safetensors, converted to float32. Every tensor the
// architecture needs must be present with its shape; errors name the file
// and the tensor.
func LoadTeacher(dir string) (*stages.Teacher, *hfconfig.Phi, error) {
	h, err := hfconfig.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	c := phi.FromHF(h)
	w, err := loadWeights(dir, shapesOf(c.ParamShapes()), "teacher")
	if err != nil {
		return nil, nil, err
	}
	return &stages.Teacher{Config: c, Weights: w}, h, nil
}

func shapesOf(m map[string]graphs.Shape) map[string][]int64 {
	out := map[string][]int64{}
	for k, v := range m {
		out[k] = v.Sizes()
	}
	return out
}

// loadWeights reads exactly the named tensors from a safetensors file or
// directory, checking shapes, as float32.
func loadWeights(path string, want map[string][]int64, what string) (stages.Weights, error) {
	set, err := safetensors.OpenFileOrDir(path)
	if err != nil {
		return nil, fmt.Errorf("load %s weights: %w", what, err)
	}
	defer set.Close()
	var errs []error
	w := stages.Weights{}
	for _, name := range sortedNames(want) {
		if !set.Has(name) {
			errs = append(errs, fmt.Errorf("%s: missing tensor %s", path, name))
			continue
		}
		t, err := set.Tensor(name)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !slices.Equal(t.Shape, want[name]) {
			errs = append(errs, fmt.Errorf("%s: tensor %s has shape %v, the %s config needs %v", path, name, t.Shape, what, want[name]))
			continue
		}
		w[name] = t.AsFloat32()
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("load %s weights: %w", what, errors.Join(errs...))
	}
	return w, nil
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

// LoadStudent reads a student directory in the authors' layout: config.json
// plus model.safetensors (mohawk) or pytorch_model.bin (the authors' save).
// The MLP width comes from the weights (the authors' config omits it).
func LoadStudent(dir string, eps float32) (*stages.Student, error) {
	var w stages.Weights
	st := filepath.Join(dir, StudentWeightsFile)
	pt := filepath.Join(dir, TorchWeightsFile)
	var all map[string]*tensors.Tensor
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
		var err error
		if all, err = torchpickle.Load(pt); err != nil {
			return nil, fmt.Errorf("load student: %w", err)
		}
	default:
		return nil, fmt.Errorf("load student: %s holds neither %s nor %s", dir, StudentWeightsFile, TorchWeightsFile)
	}
	inner := int64(0)
	if fc1, ok := all[phimamba.LayerPrefix(0)+".mlp.fc1.weight"]; ok && len(fc1.Shape) == 2 {
		inner = fc1.Shape[0]
	}
	c, err := phimamba.LoadConfig(dir, inner, eps)
	if err != nil {
		return nil, err
	}
	w = stages.Weights{}
	var errs []error
	for name, shape := range c.ParamShapes() {
		t, ok := all[name]
		switch {
		case !ok:
			errs = append(errs, fmt.Errorf("%s: missing tensor %s", dir, name))
		case !slices.Equal(t.Shape, shape):
			errs = append(errs, fmt.Errorf("%s: tensor %s has shape %v, config.json implies %v", dir, name, t.Shape, shape))
		default:
			w[name] = t.AsFloat32()
		}
	}
	for name := range all {
		if _, ok := c.ParamShapes()[name]; !ok {
			errs = append(errs, fmt.Errorf("%s: unexpected tensor %s (not part of a Phi-Mamba with this config)", dir, name))
		}
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("load student: %w", errors.Join(errs...))
	}
	return &stages.Student{Config: c, Weights: w}, nil
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

// SaveTeacher writes a Hugging Face Phi directory (config.json and
// model.safetensors in dtype: float32 or float16) for a teacher made by a
// pretrain stage.
func SaveTeacher(dir string, t *stages.Teacher, h *hfconfig.Phi, dtype tensors.DType) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	var named []safetensors.Named
	for _, n := range sortedNames(t.Weights) {
		named = append(named, safetensors.Named{Name: n, T: t.Weights[n].Convert(dtype)})
	}
	h.TorchDType = dtype.String()
	if err := safetensors.Write(filepath.Join(dir, "model.safetensors"), named, map[string]string{"format": "pt"}); err != nil {
		return err
	}
	cfg, err := h.Marshal()
	if err != nil {
		return err
	}
	return atomicfile.WriteBytes(filepath.Join(dir, hfconfig.FileName), cfg)
}

func exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
