// Package all registers every model family (package family) by importing
// each family's package for its init: import it blank where models are
// read by their config.json (pipeline, deploy, cmd).
package all

import (
	_ "mohawk/graphs/models/llamba"   // Llama, Qwen2, Mistral teachers; Llamba students
	_ "mohawk/graphs/models/phimamba" // Phi teachers; Phi-Mamba students
)
