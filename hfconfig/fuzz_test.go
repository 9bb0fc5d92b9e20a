package hfconfig

import (
	"reflect"
	"testing"
)

// FuzzParse feeds arbitrary bytes to Parse and the Load-style merged report.
// Nothing may panic, and every config that validates must survive a
// Marshal/Parse round trip unchanged.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"model_type":"phi","vocab_size":51200,"hidden_size":2048,"intermediate_size":8192,"num_hidden_layers":24,"num_attention_heads":32,"num_key_value_heads":null,"partial_rotary_factor":0.5,"rope_theta":10000.0,"rope_scaling":null,"layer_norm_eps":1e-05,"hidden_act":"gelu_new","torch_dtype":"float16","bos_token_id":50256,"eos_token_id":50256}`,
		`{"model_type":"phi","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,"num_hidden_layers":6,"num_attention_heads":8,"rope_parameters":{"partial_rotary_factor":0.5,"rope_theta":10000.0,"rope_type":"default"},"dtype":"float16","bos_token_id":0}`,
		`{"hidden_size":"64","rope_parameters":[],"eos_token_id":[1,2],"head_dim":3}`,
		`{"model_type":"phi","vocab_size":10,"hidden_size":6,"num_attention_heads":4,"partial_rotary_factor":2,"rope_scaling":{"type":"linear"}}`,
		`null`, `[]`, `{`, ``, `{"vocab_size":1e999}`,
		// issue 22: phi-tiny-en's config with a billion layers (refused by
		// CheckLayers against the weights, not by Parse).
		`{"model_type":"phi","vocab_size":8192,"hidden_size":256,"intermediate_size":1024,"num_hidden_layers":1000000000,"num_attention_heads":8,"max_position_embeddings":2048}`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if p, probs, err := parse(data, "fuzz.json"); err == nil {
			_ = append(probs, p.problems()...)
		}
		p, err := Parse(data, "fuzz.json")
		if err != nil {
			return
		}
		_ = p.RotaryDim()
		if p.Validate() != nil {
			if _, err := p.Marshal(); err == nil {
				t.Fatal("Marshal accepted a config Validate rejects")
			}
			return
		}
		out, err := p.Marshal()
		if err != nil {
			t.Fatalf("Marshal of a valid config: %v", err)
		}
		q, err := Parse(out, "out.json")
		if err != nil {
			t.Fatalf("Parse of Marshal's output: %v\n%s", err, out)
		}
		if err := q.Validate(); err != nil {
			t.Fatalf("Marshal's output does not validate: %v\n%s", err, out)
		}
		if a, b := exported(p), exported(q); !reflect.DeepEqual(a, b) {
			t.Fatalf("round trip changed\n%+v\ninto\n%+v", a, b)
		}
	})
}
