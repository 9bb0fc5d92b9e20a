// Package data turns text files into token batches: it reads a corpus (plain
// text split into documents, JSONL with one document per line, or the string
// column of Parquet files; one file or a glob of shards; text and JSONL
// possibly gzip- or zstd-compressed; formats found from the files' first
// bytes, binary files, invalid UTF-8 and NUL bytes refused), encodes it in
// parallel, shard by shard, into one token stream with an end-of-text id
// after every document, caches the stream on disk, splits it into train and validation
// parts by whole documents, and cuts it into the int64 tensors that training
// and evaluation feed to the models:
//
//   - [Sampler] gives training batches of seqLen+1 tokens per row (inputs and
//     labels shifted by one) as a pure function of a seed and the batch
//     index, so a run resumed at batch i sees exactly the batches an
//     uninterrupted run would, with no iterator state saved beyond i;
//   - [EvalWindows] gives the fixed perplexity windows of the evaluation
//     protocol (windows of seqLen+1 tokens starting every seqLen tokens);
//   - [Benchmarks] are the zero-shot tasks of the MOHAWK paper's Table 1
//     (WinoGrande, ARC-Easy, ARC-Challenge, PIQA, HellaSwag, LAMBADA) with
//     their datasets and reported metrics; [LoadBenchmark] reads one from a
//     Parquet or JSONL file or from its dataset's directory, and
//     [LastWordExamples], [LoadLambada] and [LoadMultipleChoice] build the
//     requests exactly as lm-evaluation-harness builds their prompts;
//     [AccNorm] scores a question from per-choice log-likelihoods as
//     lm-evaluation-harness does.
//
// The package does not import the tokenizer: anything with Encode and
// VocabSize (the [Encoder] interface) will do, which keeps data independent
// of how text becomes ids. It imports mohawk/tensors (batches are
// *tensors.Tensor), mohawk/atomicfile (cache files are replaced atomically),
// the progress-bar library, parquet-go (Parquet corpora and task files),
// klauspost/compress (zstd) and the standard library.
//
// Everything is deterministic: the same files, seeds and settings give the
// same tokens, splits and batches on every run and with any number of
// workers. Random choices use math/rand/v2's PCG, whose output for a seed is
// pinned by the tests.
//
// Errors: functions that read files or take settings return errors; the
// messages are lower case, name the file (with the line and the JSON key for
// JSONL) or the stream, and say what to do. A cache file that is truncated,
// corrupt or written for other inputs is never used: it is rebuilt. Calls
// with arguments that only a programming error produces (a negative batch
// index, a window outside the stream, log-likelihoods that do not match the
// choices) panic. A *Stream and a *Sampler are safe for concurrent use.
package data
