package pipeline

import (
	"fmt"
	"path/filepath"

	"mohawk/atomicfile"
	"mohawk/deploy"
	"mohawk/export"
	"mohawk/graphs"
	"mohawk/graphs/layers"
	"mohawk/graphs/models/family"
	"mohawk/tensors"
	"mohawk/tokenizer"
)

// export runs an export stage: the student (and optionally the teacher) as
// deployment folders.
func (w *work) export(sp StagePlan) (string, error) {
	e := sp.Export
	o := deploy.Options{FP16: e.FP16, Opset: e.Opset}
	dir := e.Out
	if err := deploy.ExportStudent(filepath.Join(dir, "student"), w.student.Config, w.student.Weights, w.cfg.TokenizerPath(), o); err != nil {
		return "", err
	}
	if e.Teacher {
		if err := deploy.ExportTeacher(filepath.Join(dir, "teacher"), w.teacher.Config, w.teacher.Weights, w.cfg.TokenizerPath(), o); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ExportPlainTeacher writes a Hugging Face teacher as a standalone ONNX
// model without a cache: input input_ids int64 [batch, seq] → logits float32
// [batch, seq, vocab] (batch and seq dynamic), with config.json and
// tokenizer.json beside it.
func ExportPlainTeacher(model, out string, o deploy.Options) error {
	t, err := LoadTeacher(model)
	if err != nil {
		return err
	}
	tok := filepath.Join(model, "tokenizer.json")
	if !exists(tok) {
		return fmt.Errorf("model %s has no tokenizer.json; a deployment folder needs one", model)
	}
	if tk, err := tokenizer.Load(tok); err != nil {
		return err
	} else if err := tk.CheckFits(t.Config.Sizes().Vocab, "the teacher in "+model); err != nil {
		return err
	}
	g := graphs.New(t.Config.Family() + "_logits")
	if err := graphs.Try(func() {
		ids := g.Input("input_ids", tensors.Int64, graphs.S("batch", "seq"))
		dt := tensors.Float32
		if o.FP16 {
			dt = tensors.Float16
		}
		p := &layers.Frozen{G: g, Tensors: t.Weights, DType: dt}
		var params layers.Params = p
		if o.FP16 { // weights stored as float16, computed in float32
			params = layers.ParamFunc(func(name string, shape graphs.Shape) *graphs.Value {
				return graphs.Cast(p.Get(name, shape), tensors.Float32)
			})
		}
		// Standard ops only, so any ONNX runtime loads the file.
		g.Output("logits", t.Config.Forward(params, ids, family.TeacherOptions{ExplicitAttention: true}).Logits)
	}); err != nil {
		return err
	}
	if err := export.Save(g, out, export.SaveOptions{Options: export.Options{Opset: o.Opset}, External: o.External, Portable: true}); err != nil {
		return err
	}
	cfg, err := t.Config.MarshalHF(tensors.Float32)
	if err != nil {
		return err
	}
	if err := atomicfile.WriteBytes(filepath.Join(out, "config.json"), cfg); err != nil {
		return err
	}
	return copyFile(tok, filepath.Join(out, "tokenizer.json"))
}

// ExportModel writes a model directory (a Hugging Face teacher or a
// student of any registered family, with tokenizer.json) as an ONNX
// deployment folder.
func ExportModel(model, out string, o deploy.Options) (ModelKind, error) {
	kind, err := DetectModel(model)
	if err != nil {
		return "", err
	}
	tok := filepath.Join(model, "tokenizer.json")
	if !exists(tok) {
		return "", fmt.Errorf("model %s has no tokenizer.json; a deployment folder needs one", model)
	}
	if kind == KindTeacherModel {
		t, err := LoadTeacher(model)
		if err != nil {
			return "", err
		}
		return kind, deploy.ExportTeacher(out, t.Config, t.Weights, tok, o)
	}
	s, err := LoadStudent(model, 1e-5)
	if err != nil {
		return "", err
	}
	return kind, deploy.ExportStudent(out, s.Config, s.Weights, tok, o)
}
