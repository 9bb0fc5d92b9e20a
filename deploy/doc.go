// Package deploy ships mohawk's models for inference: it exports the
// student and the teacher of any model family (package family) as
// self-contained deployment folders that ONNX Runtime runs with carried
// states, generates text from such a folder, and benchmarks generation.
//
// # Folder
//
// ExportStudent and ExportTeacher write
//
//	model.onnx         the graph (opset 21 by default, up to 26)
//	model.onnx.data    its weights as ONNX external data, 4 KiB aligned: with
//	                   Options.External, from ExternalAbove bytes, and always
//	                   past protobuf's 2 GB limit
//	config.json        the student in the authors' layout / the teacher's
//	                   Hugging Face config
//	tokenizer.json     a copy of the tokenizer
//	genai_config.json  onnxruntime-genai's description (type "decoder")
//	mohawk.json        the carried tensors' names and shapes (Manifest);
//	                   written last, so its presence marks a complete folder
//
// The names follow onnxruntime-genai (../shared/docs/onnx-ecosystem.md
// §4.2–4.3): input_ids int64 [batch_size, sequence_length] and logits
// float32 [batch_size, sequence_length, vocab]; the student carries
// past_key_values.i.conv_state [batch_size, ConvChannels, DConv−1] and
// past_key_values.i.recurrent_state [batch_size, H, N, P] (every non-batch
// dim static; zeros are an empty context) into present.i.conv_state and
// present.i.recurrent_state; the teacher carries past_key_values.i.key and
// .value [batch_size, heads, past_sequence_length, head_dim] (length 0 when
// empty) into present.i.key / .value, its rotary positions continuing from
// past_sequence_length. A hybrid student's attention layer i carries the
// teacher's kind of cache, past_key_values.i.key / .value, in the one
// graph, i being the layer's own index. genai derives the student's state names from
// past_key_names and skips the KV cache when no .key input exists; the
// folders were not run through onnxruntime-genai itself (it is not
// available here).
//
// # Decoding the student
//
// One graph serves prefill (T ≥ 1) and decoding (T = 1). The chunked SSD
// form pads T to a whole chunk (128 tokens), so a T = 1 call through it
// computes a full chunk per layer. The graph therefore holds an ONNX If on
// sequence_length == 1: its then-branch is the recurrent step form, its
// else-branch the chunked SSD form with the incoming states; both read the
// same weights from the enclosing graph. Measured per decode step on this
// project's 2-core CPU (BenchmarkDecodeForms, ONNX Runtime 1.29, other
// jobs sharing the machine): phimamba-tiny-en 0.9–1.1 ms with the If,
// 0.9–1.0 ms for a separate step-only graph, 2.8–3.2 ms with the SSD form
// for every call; at Phi-Mamba-1.5B's layer width (2 layers) 9.7–11 ms,
// 9.7–9.9 ms and 14–16.6 ms. The If costs nothing measurable and keeps one
// graph, as genai expects.
//
// Options.FP16 stores the weights as float16 and casts them to float32 in
// the graph, so the computation and the states stay float32. The teacher's
// checkpoint is float16, so its logits do not move; the float32 student's
// move by up to 0.0065 on the reference input (logits up to |15|); the
// tests allow 0.02.
//
// # Generating
//
// Open loads a folder on a runtime.Config chosen by the caller: the same
// folder runs on the CPU or, with Provider "cuda", on a GPU (TestCUDA,
// opt-in). Generator.Prefill, Step and Feed run batches of equal-length
// sequences (there is no attention mask); a student's Prefill also takes
// rows of different lengths, prefilling each alone and stacking the
// fixed-size states, after which Step advances them together. They carry the
// states between calls as runtime.Resident values, so they stay where the
// provider keeps them (device memory on a GPU) and a decode step moves only
// token ids and logits; long inputs go in pieces of Generator.Chunk tokens,
// and the logits of all but the last piece stay on the device.
//
// Every graph also returns next_token [batch_size, 1] int64: the ArgMax of
// the last position's logits over the tokenizer's ids (the first on ties,
// as the greedy Sampler). Generator.StepGreedy fetches it instead of the
// logits, so a greedy decode step moves B int64 token ids in and B out —
// 16 bytes per sequence — and Generate uses it at temperature 0. Folders
// exported before next_token (no next_token in mohawk.json) still decode:
// StepGreedy then picks on the host. Generator.HostTraffic reports the
// bytes that crossed (runtime.Env.HostTraffic); TestResidentDecode holds a
// step to exactly those bytes and the decode to a host-state reference.
// The extra output is stock ONNX; onnxruntime-genai binds the outputs it
// names and leaves it alone.
// Sampler implements greedy, temperature, top-k and top-p sampling. Generate
// streams text, holding back tokens while a multi-byte character is
// incomplete, and stops at the end-of-text token. The teacher's cache (and a
// hybrid's, for its attention layers) is a new, longer tensor each call:
// present = Concat(past, new), fed back as the next past while resident
// (past_present_share_buffer is off). A fixed-size, pre-allocated cache
// written at a position input would not remove that copy with stock ONNX
// ops: ScatterND or TensorScatter return a new tensor, and ONNX Runtime
// does not write a graph input in place, so each step would copy the whole
// maximum-length cache instead of the current one, and attend over the
// maximum length behind a mask. Growth is therefore kept; with attention
// over the cache, that is why its decode cost grows with the context
// while the pure student's stays flat (docs/benchmarks.md has the Concat
// share).
//
// # Benchmarks
//
// BenchGenerate prefills contexts of random tokens (time to first token)
// and times greedy decode steps, recording the carried bytes and the
// process's resident-set high-water mark (VmHWM, reset per row through
// /proc/self/clear_refs) and the host bytes per decode step, for each
// folder (student, hybrid, teacher), batch size and context length.
// WriteBenchTable and WriteBenchPlot write a Markdown table and a PNG of
// decode ms/step against the context.
// TestBenchReport runs it at full size when MOHAWK_BENCH_OUT is set.
//
// # Independent check with onnx-go
//
// The tests decode the exported files with mohawk's own protobuf types
// (names, dtypes, shapes, opset, external data locations inside the
// folder) and with github.com/owulveryck/onnx-go v0.5.0, a 2019 pure-Go
// decoder with its own copy of onnx.proto3. onnx-go reads the teacher's
// float32 model with embedded weights completely (all inputs, outputs,
// initializers and 698 nodes of 25 op types) and the student without its
// If (the SSD form for every call: 993 nodes of 31 op types). It cannot
// read the rest, for three reasons the tests pin down:
//   - the student's If: attributes of type GRAPH are not implemented
//     (toOperationAttribute returns "ir.AttributeProto_GRAPH not handled
//     yet" for then_branch), as for any Loop or If;
//   - float16 weights (Options.FP16): its dtype table stops at
//     "type: FLOAT16: Not Yet Implemented";
//   - external data: it reads only raw_data and the typed data fields, so
//     an initializer stored in model.onnx.data gives "No data found".
//
// onnx-go does not look at opset_import and drops symbolic dimensions
// (dim_param) from input shapes, so it cannot check those; our own decoder
// does.
//
// # Place and errors
//
// deploy imports graphs, graphs/layers, graphs/models/family (never a
// family's own package: the caller links the families in, as pipeline
// does through graphs/models/all), export, runtime, tokenizer, tensors and
// atomicfile (and gonum.org/v1/plot); it does not import pipeline or
// stages, which may import it.
//
// Nothing panics on bad input: graph construction panics (*graphs.Error)
// are recovered into errors, and every error is lower-case and names the
// folder, file, tensor or option concerned and what to change. A Generator
// whose run fails drops its context, so the next call starts clean.
package deploy
