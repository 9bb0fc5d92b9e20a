// Package family is the registry of model families: a teacher architecture
// (a Hugging Face causal LM) paired with the MOHAWK student distilled from
// it. pipeline, stages and deploy reach every model through the Teacher
// and Student interfaces here and never name a family; a family package
// registers itself from its init function (Register), and the blank
// imports of package graphs/models/all bring every family in, as
// Ollama's Go engine registers its architectures.
//
// Lookups: ForTeacherConfig picks the family of a config.json by its
// architectures list, then by its model_type; ForStudentConfig by the
// student's config layout; ByName by the family's own name. A config no
// family claims is an error listing the supported architectures.
//
// The package also holds the graph-level types every family shares: the
// teacher's options, outputs and KV cache, and the student's forms,
// states, options and outputs.
//
// Place in the dependency order: family imports graphs, graphs/layers and
// tensors only, and no family.
package family
