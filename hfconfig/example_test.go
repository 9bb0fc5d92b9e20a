package hfconfig_test

import (
	"fmt"

	"mohawk/hfconfig"
)

func Example() {
	p, err := hfconfig.Parse([]byte(`{
		"model_type": "phi",
		"vocab_size": 8192, "hidden_size": 256, "intermediate_size": 1024,
		"num_hidden_layers": 6, "num_attention_heads": 8,
		"rope_parameters": {"rope_theta": 10000.0, "partial_rotary_factor": 0.5, "rope_type": "default"}
	}`), "config.json")
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println("valid:", p.Validate() == nil)
	fmt.Println("head dim:", p.HeadDim, "rotary dims:", p.RotaryDim(), "eps:", p.LayerNormEps)

	p.QKLayerNorm = true
	p.NumKeyValueHeads = 2
	fmt.Println(p.Validate())
	// Output:
	// valid: true
	// head dim: 32 rotary dims: 16 eps: 1e-05
	// config.json: 2 problems:
	// 	num_key_value_heads is 2 but num_attention_heads is 8; grouped-query attention is not supported, use a checkpoint whose head counts are equal
	// 	qk_layernorm is true; layer norms on queries and keys are not supported, use a checkpoint without them
}
