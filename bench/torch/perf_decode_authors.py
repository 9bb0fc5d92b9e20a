# Peer of `pipeline bench-generate` (issue 19): greedy decode throughput of
#  - the Phi-Mamba authors' own generation path: goombalab/phi-mamba's LMHeadModel, whose Discrete Mamba-2
#    Mixer.step runs mamba_ssm's Triton selective_state_update, driven as mamba_ssm.utils.generation.decode
#    drives it — "authors-step" eagerly (decode(cg=False)), "authors-cudagraph" replaying the CUDA graph that
#    update_graph_cache captures (decode(cg=True), what the authors' generation.py uses);
#  - transformers' PhiForCausalLM teacher with its DynamicCache ("teacher").
# Random weights at the shape given on the command line (default: phimamba-tiny-en / phi-tiny-en, ~9M
# parameters). For each batch size and context length it prefills random tokens, runs --warmup untimed steps,
# then times --decode-tokens steps; each step reads the B picked token ids back to the host, as decode()'s stop
# check and mohawk's Generator.StepGreedy do. One JSON line per measurement.
#
# Prefill: the authors' forward with inference_params uses one chunk of the whole prompt (chunk_size = seqlen,
# and mamba_chunk_scan_combined there takes no initial state), so its memory grows with the square of the
# prompt; each sequence is therefore prefilled alone (batch 1) and its states copied into the batch's cache,
# which decode() cannot do but which leaves the timed steps unchanged. A prefill that fails (e.g. out of
# memory) is reported in "prefill" and the states are filled with random values instead: a pure student's
# step does the same work whatever its states hold.
#
# One shim: their Mixer.step returns (B, D) where their block expects (B, 1, D), which broadcasts to
# (B, B, D) at batch > 1 and failed at batch 16 (docs/benchmarks.md); the script returns a (B, 1, D) view
# of the same result (not yet run on a GPU).
#
# Needs pm/ (pm-setup.sh in ../shared/tools/torch-reference: phi-mamba's modules/ and utils/, mamba_ssm's
# ops/triton and utils), given by --pm, $PM_DIR or $TORCH_REFERENCE/pm; einops, triton, transformers.
# Usage: python3 perf_decode_authors.py [--batches 1,16] [--contexts 2048,16384] [--decode-tokens 64]
#          [--d-model 256 --layers 6 --d-state 32 --heads 8 --vocab 8192 --teacher-heads 8]
#          [--impls authors-step,authors-cudagraph,teacher] [--dtype fp32|bf16] [--prefill authors|random]
import argparse, json, os, resource, sys, time

import torch

here = os.path.dirname(os.path.abspath(__file__))
ref = os.environ.get("TORCH_REFERENCE", os.path.join(here, "..", "..", "..", "shared", "tools", "torch-reference"))
ap = argparse.ArgumentParser()
ap.add_argument("--batches", default="1,16")
ap.add_argument("--contexts", default="2048,16384")
ap.add_argument("--decode-tokens", type=int, default=64)
ap.add_argument("--warmup", type=int, default=4)
ap.add_argument("--d-model", type=int, default=256)
ap.add_argument("--layers", type=int, default=6)
ap.add_argument("--d-state", type=int, default=32)
ap.add_argument("--heads", type=int, default=8, help="Discrete Mamba-2 heads (n_qk_heads = n_v_heads)")
ap.add_argument("--vocab", type=int, default=8192)
ap.add_argument("--teacher-heads", type=int, default=8)
ap.add_argument("--impls", default="authors-step,authors-cudagraph,teacher")
ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
ap.add_argument("--pm", default=os.environ.get("PM_DIR", os.path.join(ref, "pm")))
ap.add_argument("--seed", type=int, default=1)
ap.add_argument("--prefill", default="authors", choices=["authors", "random"],
                help="authors: each row through the authors' forward (one 2k row took 86 s on an H100 on "
                     "2026-12-07, first call included: Triton compiles and autotunes per prompt length); "
                     "random: states filled with random values (the step does the same work whatever they hold)")
args = ap.parse_args()
batches = [int(x) for x in args.batches.split(",")]
contexts = [int(x) for x in args.contexts.split(",")]
impls = args.impls.split(",")
dev, dtype = "cuda", {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
torch.manual_seed(args.seed)
torch.backends.cuda.matmul.allow_tf32 = False  # mohawk's CUDA runs are float32 unless --tf32
steps = args.warmup + args.decode_tokens


def emit(impl, batch, ctx, dt, state_bytes, params, **extra):
    print(json.dumps({"impl": impl, "batch": batch, "context": ctx, "dtype": args.dtype,
                      "decode_tokens": args.decode_tokens, "ms_per_step": round(dt * 1e3 / args.decode_tokens, 4),
                      "tokens_per_s": round(batch * args.decode_tokens / dt, 1), "state_bytes": state_bytes,
                      "params": params, "peak_gpu_mib": round(torch.cuda.max_memory_allocated() / 2**20),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024), **extra}),
          flush=True)


def timed(step):
    """Runs the warm-up steps, then times the rest; step() reads the picked ids to the host."""
    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.decode_tokens):
        step()
    torch.cuda.synchronize()
    return time.perf_counter() - t0


def authors():
    sys.path.insert(0, args.pm)
    from modules.lm_head import LMHeadModel
    import modules.mixers.discrete_mamba2 as dm2
    from mamba_ssm.utils.generation import InferenceParams, update_graph_cache
    assert dm2.selective_state_update is not None, "mamba_ssm's Triton selective_state_update did not import"
    # Their step returns (B, D) for an input of (B, 1, D), and their block adds it to (B, 1, D) tensors, which
    # broadcasts to (B, B, D) once B > 1: at batch 16 the next layer's conv step failed (2026-12-07). Return
    # (B, 1, D), a view of the same result; batch 1 computes exactly what it did before.
    step = dm2.Mixer.step

    def step_keeping_the_token_axis(self, u, state, **kwargs):
        out, state = step(self, u, state, **kwargs)
        return (out.unsqueeze(1) if u.dim() == 3 and out.dim() == 2 else out), state

    dm2.Mixer.step = step_keeping_the_token_axis
    cfg = {"LanguageModel": {"input": {"vocab_size": args.vocab, "pad_vocab_size_multiple": 8}},
           "MixerModel": {"input": {"d_model": args.d_model, "n_layer": args.layers, "lm_head_prenorm": "layer"}},
           "Block1": {"n_layers": args.layers, "BlockType": "modules.phi_block", "block_input": {"resid_dropout": 0.0},
                      "CoreType": "modules.mixers.discrete_mamba2",
                      "core_input": {"d_state": args.d_state, "n_v_heads": args.heads, "n_qk_heads": args.heads,
                                     "d_conv": 4, "conv_bias": True, "expand": 1, "chunk_size": 128,
                                     "activation": "identity", "bias": False}}}
    model = LMHeadModel(cfg, device=dev, dtype=dtype).eval()
    params = sum(p.numel() for p in model.parameters())
    return model, params, InferenceParams, update_graph_cache


def prefill_rows(model, InferenceParams, ids, states, ctx):
    """Prefills each row alone (decode()'s prefill, batch 1) and copies its states into row r of states."""
    if args.prefill == "random":
        for st in states.values():
            st["conv"].normal_(0, 0.1)
            st["ssm"].normal_(0, 0.1)
        return "random states (--prefill random)"
    try:
        for r in range(ids.shape[0]):
            ip = InferenceParams(max_seqlen=ctx + steps + 1, max_batch_size=1)
            model(ids[r:r + 1], inference_params=ip, num_last_tokens=1)
            for i, st in ip.key_value_memory_dict.items():
                states[i]["conv"][r].copy_(st["conv"][0])
                states[i]["ssm"][r].copy_(st["ssm"][0])
            del ip
        return "authors' forward, one row at a time"
    except Exception as e:  # noqa: BLE001 - reported, then the states are filled instead
        torch.cuda.empty_cache()
        for st in states.values():
            st["conv"].normal_(0, 0.1)
            st["ssm"].normal_(0, 0.1)
        return f"failed ({type(e).__name__}: {str(e)[:160]}); random states"


def run_authors(impl, model, params, InferenceParams, update_graph_cache, batch, ctx):
    ids = torch.randint(0, args.vocab, (batch, ctx), device=dev)
    max_len = ctx + steps + 1
    if impl == "authors-cudagraph":
        cache = update_graph_cache(model, None, batch, ctx, max_len)
        ip, run = cache.inference_params, cache.run
    else:
        ip = InferenceParams(max_seqlen=max_len, max_batch_size=batch)
        ip.key_value_memory_dict = model.allocate_inference_cache(batch, max_len, dtype=torch.float32)
        run = None
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    how = prefill_rows(model, InferenceParams, ids, ip.key_value_memory_dict, ctx)
    torch.cuda.synchronize()
    prefill_s = time.perf_counter() - t0
    ip.seqlen_offset = ctx
    tok = torch.randint(0, args.vocab, (batch, 1), device=dev)

    def step():  # one iteration of mamba_ssm.utils.generation.decode's loop, greedy (sample(top_k=1) = argmax)
        nonlocal tok
        pos = torch.full((batch, 1), ip.seqlen_offset, dtype=torch.long, device=dev)
        if run is None:
            logits = model(tok, position_ids=pos, inference_params=ip, num_last_tokens=1).logits.squeeze(1)
        else:
            logits = run(tok, pos, ip.seqlen_offset).squeeze(1)
        ip.seqlen_offset += 1
        tok = logits[..., :args.vocab].argmax(-1).unsqueeze(1)
        tok.cpu()

    dt = timed(step)
    state = sum(t.numel() * t.element_size() for st in ip.key_value_memory_dict.values() for t in (st["conv"], st["ssm"]))
    emit(impl, batch, ctx, dt, state, params, prefill_s=round(prefill_s, 3), prefill=how)
    del ip, run
    if impl == "authors-cudagraph":
        del cache
    torch.cuda.empty_cache()


def teacher_model():
    from transformers import PhiConfig, PhiForCausalLM
    cfg = PhiConfig(vocab_size=args.vocab, hidden_size=args.d_model, intermediate_size=4 * args.d_model,
                    num_hidden_layers=args.layers, num_attention_heads=args.teacher_heads,
                    num_key_value_heads=args.teacher_heads, partial_rotary_factor=0.5, hidden_act="gelu_new",
                    max_position_embeddings=max(contexts) + steps + 8, resid_pdrop=0, embd_pdrop=0, attention_dropout=0)
    cfg._attn_implementation = "sdpa"
    m = PhiForCausalLM(cfg).to(dev, dtype).eval()
    return m, sum(p.numel() for p in m.parameters())


def run_teacher(model, params, batch, ctx, chunk=2048):
    from transformers import DynamicCache
    ids = torch.randint(0, args.vocab, (batch, ctx), device=dev)
    cache = DynamicCache()
    torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    for s in range(0, ctx, chunk):  # chunked prefill keeps the attention's working set bounded
        model(ids[:, s:s + chunk], past_key_values=cache, use_cache=True, logits_to_keep=1)
    torch.cuda.synchronize()
    prefill_s = time.perf_counter() - t0
    tok = torch.randint(0, args.vocab, (batch, 1), device=dev)

    def step():
        nonlocal tok
        out = model(tok, past_key_values=cache, use_cache=True, logits_to_keep=1)
        tok = out.logits[:, -1, :args.vocab].argmax(-1).unsqueeze(1)
        tok.cpu()

    dt = timed(step)
    kv = [(l.keys, l.values) for l in cache.layers] if hasattr(cache, "layers") else zip(cache.key_cache, cache.value_cache)
    state = sum(t.numel() * t.element_size() for pair in kv for t in pair)
    emit("teacher", batch, ctx, dt, state, params, prefill_s=round(prefill_s, 3), kv_tokens=cache.get_seq_length())
    del cache
    torch.cuda.empty_cache()


with torch.inference_mode():
    if any(i.startswith("authors") for i in impls):
        model, params, InferenceParams, update_graph_cache = authors()
        for impl in [i for i in impls if i.startswith("authors")]:
            for b in batches:
                for c in contexts:
                    run_authors(impl, model, params, InferenceParams, update_graph_cache, b, c)
        del model
        torch.cuda.empty_cache()
    if "teacher" in impls:
        model, params = teacher_model()
        for b in batches:
            for c in contexts:
                run_teacher(model, params, b, c)
