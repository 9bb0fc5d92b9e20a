// Package pipeline runs mohawk from a pipeline.yaml: it decodes the config
// strictly (viper + mapstructure, unknown keys are errors), validates every
// value and referenced file at once, resolves a plan (token budgets into
// steps and gradient accumulation, a hash chain that keys each stage's
// outputs), loads the teacher and transfers its weights into the student,
// tokenizes the data, runs the stages in order with resumable, checksummed
// checkpoints, and writes metrics.jsonl, summary.json, report.md and loss
// curves into the run directory.
//
// Models are reached only through the registry (package
// graphs/models/family): the teacher's config.json picks its family, which
// derives, initialises, trains and exports the student; this package names
// no family and imports graphs/models/all to register every one.
//
// Place in the dependency order: cmd/pipeline → pipeline → stages →
// graphs/..., export, runtime, data. Only pipeline (and cmd) read
// configuration files. Functions return errors that name the key, file or
// tensor involved and say what to do.
package pipeline

import _ "mohawk/graphs/models/all" // every model family registers itself
