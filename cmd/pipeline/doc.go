// Command pipeline distils a Hugging Face teacher (Phi, Llama, Qwen2,
// Mistral) into a Mamba-style student with MOHAWK, evaluates models and
// exports them to ONNX.
//
//	pipeline run pipeline.yaml [key=value ...] [--provider cpu|cuda|tensorrt] [--dry-run]
//	pipeline validate pipeline.yaml [key=value ...] [--ranks N]
//	pipeline ablate FILE --budget N [--recipes s123,s23,s3,scratch] [key=value ...]
//	pipeline eval --model DIR (--data FILE|GLOB | --dataset ORG/NAME[@REVISION] --files PATTERN) [--column C] [--seq-len 256] [--windows 200] [--doc-separator '\n\n'] [--provider P] [--json]
//	pipeline eval --model DIR --tasks winogrande,arc_easy,... [--task-data task=PATH,...] [--task-dir DIR] [--limit N] [--json]
//	pipeline export --model DIR --out DIR [--fp16] [--opset N]
//	pipeline grads --model HF_DIR --input FILE.safetensors --out FILE.safetensors
//	pipeline convert --in DIR --out DIR
//	pipeline generate --model EXPORT_DIR --prompt TEXT [--max-new-tokens N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--provider P]
//	pipeline bench-generate [--student DIR] [--hybrid DIR] [--teacher DIR] [--contexts 2048,16384] [--batches 1,16] [--decode-tokens N] [--chunk N] [--host-logits] [--out DIR] [--provider P]
//	pipeline bench-forward --model DIR|phi-1.5 [--batch B] [--seq T] [--iters N] [--provider P]
//	pipeline bench-stage --teacher DIR|phi-1.5 --stage orient|align|distill|pretrain [--micro-batch B] [--seq T] [--steps-per-run S] [--provider P]
//	pipeline bench-stage --teacher DIR|phi-1.5 --stage distill [--precision bf16] --traffic N   (bytes the step graph moves; no runtime)
//	pipeline bench-mixer --teacher DIR|phi-1.5 [--forms ssd,matrix,step] [--seqs 512,2048,8192]
//	pipeline profile [--top N] [--json] PROFILE.json...
//	pipeline setup [--provider cpu|cuda]
//	pipeline fetch [--repo-type dataset] ORG/NAME[@REVISION] [--include PATTERN ...]
//
// A model directory (--model, --teacher, --in, teacher.path, student.path)
// may also be a Hugging Face id, ORG/NAME[@REVISION], taken from the
// huggingface_hub cache (see mohawk/hfhub); run and fetch download it when
// it is not cached. So may a data source ({dataset: ORG/NAME, files:
// PATTERN}), eval's --dataset and a zero-shot task's path (a dataset id).
//
// Every command that runs models takes --ort-profile DIR, which writes ONNX
// Runtime's per-node trace of each session into DIR; profile sums it by op
// type.
//
// Exit status: 0 on success, 1 on an error (printed with what to do), 2 on a
// usage error or a flag value that makes no sense (named), 130 when
// interrupted by SIGINT/SIGTERM (run the same command again to resume a run;
// a second signal exits at once). A printed result is never NaN or ±Inf:
// such a result is an error naming the field.
// main returns through os.Exit(run()) so deferred clean-ups run first.
package main
