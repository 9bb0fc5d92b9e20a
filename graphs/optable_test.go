package graphs

import (
	"path"
	"reflect"
	"regexp"
	"runtime"
	"testing"
)

// namedFunc matches the runtime name of a package-level function of this
// package; closures are named like graphs.init.0.func3 or graphs.f.func1.
var namedFunc = regexp.MustCompile(`^graphs\.[A-Za-z_][A-Za-z0-9_]*$`)

// funcName is the runtime name of f without its import path ("" for nil).
func funcName(f any) string {
	v := reflect.ValueOf(f)
	if v.IsNil() {
		return ""
	}
	return path.Base(runtime.FuncForPC(v.Pointer()).Name())
}

// rowProblems lists what an op-table row lacks: a named shape rule, a
// named ONNX emitter, and either a named gradient or the NoGrad mark.
func rowProblems(d *OpDef) []string {
	var out []string
	for _, f := range []struct {
		what string
		fn   any
		want bool
	}{
		{"shape rule (Infer)", d.Infer, true},
		{"ONNX emitter (Attrs)", d.Attrs, true},
		{"gradient (Grad)", d.Grad, !d.NoGrad},
	} {
		name := funcName(f.fn)
		switch {
		case f.want && name == "":
			out = append(out, "no "+f.what)
		case !f.want && name != "":
			out = append(out, f.what+" "+name+" on a NoGrad row")
		case name != "" && !namedFunc.MatchString(name):
			out = append(out, f.what+" is the anonymous function "+name+"; name it")
		}
	}
	if d.Since < 1 || d.Since > 21 {
		out = append(out, "opset outside 1..21")
	}
	return out
}

// TestOpTableComplete checks every row has a named shape rule, a named
// emitter (noAttrs where the op has no attributes) and either a named
// gradient rule or an explicit NoGrad mark.
func TestOpTableComplete(t *testing.T) {
	t.Parallel()
	for _, d := range Ops() {
		for _, p := range rowProblems(d) {
			t.Errorf("%s: %s", d.Type, p)
		}
	}
}

// TestRowProblems shows rowProblems catching each kind of incomplete row.
func TestRowProblems(t *testing.T) {
	t.Parallel()
	closure := func(*Node) []TypeShape { return nil }
	cases := []struct {
		name string
		row  OpDef
		bad  bool
	}{
		{"complete", OpDef{Type: "X", Since: 1, Infer: inferSame, Grad: identityGrad, Attrs: noAttrs}, false},
		{"complete, no gradient", OpDef{Type: "X", Since: 1, Infer: inferSame, NoGrad: true, Attrs: noAttrs}, false},
		{"no emitter", OpDef{Type: "X", Since: 1, Infer: inferSame, Grad: identityGrad}, true},
		{"no shape rule", OpDef{Type: "X", Since: 1, Grad: identityGrad, Attrs: noAttrs}, true},
		{"no gradient, no mark", OpDef{Type: "X", Since: 1, Infer: inferSame, Attrs: noAttrs}, true},
		{"gradient and mark", OpDef{Type: "X", Since: 1, Infer: inferSame, Grad: identityGrad, NoGrad: true, Attrs: noAttrs}, true},
		{"anonymous shape rule", OpDef{Type: "X", Since: 1, Infer: closure, Grad: identityGrad, Attrs: noAttrs}, true},
		{"anonymous gradient", OpDef{Type: "X", Since: 1, Infer: inferSame, Attrs: noAttrs,
			Grad: func(n *Node, g []*Value, _ []bool) []*Value { return g }}, true},
		{"opset 0", OpDef{Type: "X", Infer: inferSame, Grad: identityGrad, Attrs: noAttrs}, true},
	}
	for _, c := range cases {
		p := rowProblems(&c.row)
		if (len(p) > 0) != c.bad {
			t.Errorf("%s: problems %q, want some: %v", c.name, p, c.bad)
		}
	}
}
