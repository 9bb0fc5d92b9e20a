// Package hfconfig reads and writes the Hugging Face config.json of a Phi
// model (PhiForCausalLM, model_type "phi"): the hyperparameters that size the
// teacher's graph and the student built from it.
//
// Both layouts are read: transformers 4 keeps rope_theta and
// partial_rotary_factor at the top level beside rope_scaling; transformers 5
// moves them into rope_parameters {rope_theta, partial_rotary_factor,
// rope_type}. Optional keys default as in transformers' PhiConfig. Marshal
// writes the transformers 5 layout.
//
// Llama-family teachers (ParseLlama: llama, qwen2, mistral) and Cartesia's
// Llamba students (ParseLlamba, Llamba.Marshal: the flat layout with
// mlp_cfg and ssm_cfg) are read the same way, every problem named by key.
//
// Parse only decodes; Validate checks that mohawk supports the model and
// reports every problem at once, each naming its key, the file and what to
// do. Load does both, and also folds decoding problems (a key of the wrong
// JSON type) into that one report.
//
// Place in the dependency order: a leaf that imports only the standard
// library; model building, the pipeline and export read a *Phi.
//
// Errors: bad input never panics. Problems with a config are returned as an
// *Error listing each Problem.
package hfconfig
