package pipeline

import (
	"fmt"
	"path/filepath"

	"mohawk/deploy"
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
		if err := deploy.ExportTeacher(filepath.Join(dir, "teacher"), w.hc, w.teacher.Weights, w.cfg.TokenizerPath(), o); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// ExportModel writes a model directory (a Hugging Face Phi teacher or a
// Phi-Mamba student, with tokenizer.json) as an ONNX deployment folder.
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
		t, h, err := LoadTeacher(model)
		if err != nil {
			return "", err
		}
		return kind, deploy.ExportTeacher(out, h, t.Weights, tok, o)
	}
	s, err := LoadStudent(model, 1e-5)
	if err != nil {
		return "", err
	}
	return kind, deploy.ExportStudent(out, s.Config, s.Weights, tok, o)
}
