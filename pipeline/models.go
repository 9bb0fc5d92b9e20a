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
	"mohawk/graphs/models/phi"
	"mohawk/graphs/models/phimamba"
	"mohawk/hfconfig"
	"mohawk/safetensors"
	"mohawk/stages"
	"mohawk/tensors"
	"mohawk/torchpickle"
)

// LoadTeacher reads a Hugging Face Phi checkpoint directory: config.json
// and (possibly sharded) safetensors, converted to float32. The checkpoint
// must hold exactly the tensors the config implies, with their shapes
// (checkTensors); errors name the file and the tensors.
func LoadTeacher(dir string) (*stages.Teacher, *hfconfig.Phi, error) {
	h, err := hfconfig.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	c := phi.FromHF(h)
	set, err := safetensors.OpenFileOrDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("load teacher weights: %w", err)
	}
	defer set.Close()
	if err := checkTeacherSet(dir, set, h); err != nil {
		return nil, nil, fmt.Errorf("load teacher weights: %w", err)
	}
	w := stages.Weights{}
	for name := range c.ParamShapes() {
		t, err := set.Tensor(name)
		if err != nil {
			return nil, nil, fmt.Errorf("load teacher weights: %w", err)
		}
		w[name] = t.AsFloat32()
	}
	if err := checkWeightsFinite(dir, "teacher", w); err != nil {
		return nil, nil, err
	}
	return &stages.Teacher{Config: c, Weights: w}, h, nil
}

// checkTeacherSet applies checkTensors to a Hugging Face Phi checkpoint
// without reading its weights.
func checkTeacherSet(dir string, set *safetensors.Set, h *hfconfig.Phi) error {
	// The layer count first: it sizes ParamShapes below (10^9 layers would
	// list 10^10 tensors before any comparison).
	if err := hfconfig.CheckLayers(filepath.Join(dir, hfconfig.FileName), "num_hidden_layers", h.NumHiddenLayers, set.Names(), strings.TrimSuffix(phi.LayerPrefix(0), "0")); err != nil {
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
	for name, s := range phi.FromHF(h).ParamShapes() {
		want[name] = s.Sizes()
	}
	return checkTensors(dir, have, want, "teacher", layerNaming{Prefix: strings.TrimSuffix(phi.LayerPrefix(0), "0"), Key: "num_hidden_layers", Layers: h.NumHiddenLayers})
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
	inner := int64(0)
	if fc1, ok := all[phimamba.LayerPrefix(0)+".mlp.fc1.weight"]; ok && len(fc1.Shape) == 2 {
		inner = fc1.Shape[0]
	}
	c, err := phimamba.LoadConfig(dir, inner, eps)
	if err != nil {
		return nil, err
	}
	if err := hfconfig.CheckLayers(filepath.Join(dir, StudentConfigFile), "MixerModel.input.n_layer", c.Layers, slices.Collect(maps.Keys(all)), strings.TrimSuffix(phimamba.LayerPrefix(0), "0")); err != nil {
		return nil, err
	}
	have := map[string][]int64{}
	for name, t := range all {
		have[name] = t.Shape
	}
	ln := layerNaming{Prefix: strings.TrimSuffix(phimamba.LayerPrefix(0), "0"), Key: "MixerModel.input.n_layer", Layers: c.Layers}
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
