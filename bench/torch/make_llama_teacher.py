"""llama-tiny-en: a small real Llama-3-style teacher for mohawk (issue 17).

Run from the repository root on the GPU machine (torch + transformers):

    python3 bench/torch/make_llama_teacher.py OUT_DIR [STEPS]

It reads bench/torch/llama-tiny-en/ (tokenizer.json and the protocol's id
streams train.u16.gz / val.u16.gz, made by llama_tokens.js on a machine with
Node), trains a LlamaForCausalLM with transformers (bf16 autocast, fp32
master weights, seed 0, STEPS x 64 x 256 tokens; default 3000 steps = 49.2M
tokens) and writes OUT_DIR as a Hugging Face checkpoint:

    config.json                 transformers-4 keys (rope_theta, rope_scaling
                                {rope_type llama3, ...}, torch_dtype), by hand
    model-0000{1,2}-of-00002.safetensors + model.safetensors.index.json (bf16)
    generation_config.json, tokenizer.json, tokenizer_config.json
    reference.safetensors       from the saved bf16 weights loaded in fp32 with
                                eager attention: input_ids [2,48], logits,
                                hidden_states.0..6, attentions.0..5 [2,8,48,48],
                                loss [1] (mean next-token cross-entropy),
                                grad.<HF name> for a few parameters
    teacher_metrics.json        training log and held-out perplexity under the
                                protocol of ../shared/README.md (200 windows)

Shape: Llama-3.2-1B's design at phi-tiny-en's size: hidden 256, 6 layers,
8 query heads and 2 key/value heads of 32, SwiGLU 688, RMSNorm 1e-5, tied
embeddings (as Llama-3.2-1B, the teacher of Cartesia's Llamba-1B), rope theta
500000 with llama3 scaling (factor 8, low 1, high 4, original 256),
max_position_embeddings 2048, vocabulary 8192.

Every check that can fail without training (tokenizer agreement when the
`tokenizers` package exists, the rope frequencies, the transformers-4 config
reloading to the same model) runs on the untrained model first, so a broken
environment costs seconds, not the training run.
"""
import gzip
import hashlib
import json
import math
import os
import shutil
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
import transformers
from safetensors.torch import save_file
from transformers import LlamaConfig, LlamaForCausalLM

SRC = os.path.join(os.path.dirname(os.path.abspath(__file__)), "llama-tiny-en")
SEQ, BSZ, LR, WARM, SEED = 256, 64, 1e-3, 100, 0
THETA = 500000.0
ROPE = {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
        "original_max_position_embeddings": 256}
BOS, EOS, VOCAB = 8190, 8191, 8192
SIZE = dict(vocab_size=VOCAB, hidden_size=256, intermediate_size=688, num_hidden_layers=6,
            num_attention_heads=8, num_key_value_heads=2, head_dim=32, hidden_act="silu",
            max_position_embeddings=2048, rms_norm_eps=1e-5, tie_word_embeddings=True,
            attention_bias=False, mlp_bias=False, attention_dropout=0.0, initializer_range=0.02,
            bos_token_id=BOS, eos_token_id=EOS)
GRADS = ["model.layers.0.self_attn.q_proj.weight",
         "model.layers.0.self_attn.k_proj.weight", "model.layers.0.mlp.gate_proj.weight",
         "model.layers.5.self_attn.v_proj.weight", "model.layers.5.input_layernorm.weight", "model.norm.weight"]
T0 = time.time()


def log(*a):
    print(f"[{time.time() - T0:6.1f}s]", *a, flush=True)


def die(msg):
    print("make_llama_teacher.py: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


def load_stream(name, meta):
    path = os.path.join(SRC, meta[name]["file"])
    raw = gzip.decompress(open(path, "rb").read())
    if hashlib.sha256(raw).hexdigest() != meta[name]["sha256"]:
        die(f"{path}: SHA-256 differs from tokens.json; rerun bench/torch/llama_tokens.js")
    ids = np.frombuffer(raw, dtype="<u2").astype(np.int64)
    if len(ids) != meta[name]["tokens"] or ids.max() >= VOCAB:
        die(f"{path}: {len(ids)} tokens, max id {ids.max()}; tokens.json says {meta[name]['tokens']}")
    return torch.from_numpy(ids)


def check_tokenizer(va):
    """Where the tokenizers package exists, it must give the stream's ids (made
    by the Node bindings): the first 100 val documents are decoded from the
    stream (the byte-level decoding is exact) and encoded again."""
    try:
        import tokenizers
    except ImportError:
        log("tokenizers package absent: skipping the Python tokenizer cross-check")
        return "skipped (no tokenizers package)"
    tok = tokenizers.Tokenizer.from_file(os.path.join(SRC, "tokenizer.json"))
    ids = va[:60000].tolist()
    docs, cur, used = [], [], 0
    for n, i in enumerate(ids):
        if i == EOS:
            used = n + 1  # the stream up to this document's EOS
            if cur[:1] != [BOS]:
                die(f"{SRC}/val.u16.gz: document {len(docs)} does not start with <|begin_of_text|>")
            docs.append(tok.decode(cur[1:], skip_special_tokens=False)); cur = []
            if len(docs) == 100:
                break
        else:
            cur.append(i)
    want = []
    for enc in tok.encode_batch(docs, add_special_tokens=True):
        want.extend(enc.ids); want.append(EOS)
    if want != ids[:used]:
        die("the tokenizers package encodes val documents differently from the stream in "
            f"{SRC}/val.u16.gz; rerun llama_tokens.js and compare tokenizers versions")
    msg = f"tokenizers {tokenizers.__version__} agrees with the stream on {len(docs)} val documents ({used} ids)"
    log(msg)
    return msg


def make_config():
    if int(transformers.__version__.split(".")[0]) >= 5:
        return LlamaConfig(**SIZE, rope_parameters=dict(rope_theta=THETA, **ROPE))
    return LlamaConfig(**SIZE, rope_theta=THETA, rope_scaling=dict(ROPE))


def config4():
    """config.json in transformers-4 keys, as a Llama 3.x checkpoint has it."""
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama"}
    c.update({k: v for k, v in SIZE.items()})
    c.update({"pretraining_tp": 1, "rope_theta": THETA, "rope_scaling": dict(ROPE),
              "torch_dtype": "bfloat16", "use_cache": True, "transformers_version": transformers.__version__})
    return dict(sorted(c.items()))


def llama3_inv_freq(head_dim):
    """Llama 3.1's scaled rotary frequencies, computed here independently."""
    inv = 1.0 / THETA ** (np.arange(0, head_dim, 2, dtype=np.float64) / head_dim)
    orig, lo, hi, fac = (ROPE["original_max_position_embeddings"], ROPE["low_freq_factor"],
                         ROPE["high_freq_factor"], ROPE["factor"])
    out = []
    for f in inv:
        wl = 2 * math.pi / f
        if wl < orig / hi:
            out.append(f)
        elif wl > orig / lo:
            out.append(f / fac)
        else:
            s = (orig / wl - lo) / (hi - lo)
            out.append((1 - s) * f / fac + s * f)
    return torch.tensor(out)


def check_rope(model, what):
    inv = getattr(getattr(model.model, "rotary_emb", None), "inv_freq", None)
    if inv is None:  # another transformers layout: the reload's logit check still compares
        log(f"WARNING: {what}: no model.rotary_emb.inv_freq to check against llama3 scaling")
        return float("nan")
    got = inv.detach().double().cpu()
    want = llama3_inv_freq(SIZE["head_dim"])
    rel = ((got - want).abs() / want).max().item()
    if not rel <= 1e-5:
        die(f"{what}: rotary inv_freq differs from llama3 scaling by {rel:.3g} relative; got {got.tolist()}")
    return rel


def save(model, out):
    """bf16 shards by save_pretrained, then the hand-written config files.
    Returns the saved bf16 state dict."""
    os.makedirs(out, exist_ok=True)
    state = {k: v.detach().to(torch.bfloat16).cpu() for k, v in model.state_dict().items()}
    bf = LlamaForCausalLM(model.config).to(torch.bfloat16)
    bf.load_state_dict(state)
    nbytes = sum(p.numel() * 2 for p in bf.parameters())
    bf.save_pretrained(out, safe_serialization=True, max_shard_size=f"{int(nbytes * 0.6) // 1000}KB")
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(config4(), f, indent=2); f.write("\n")
    with open(os.path.join(out, "generation_config.json"), "w") as f:
        json.dump({"_from_model_config": True, "bos_token_id": BOS, "eos_token_id": EOS,
                   "transformers_version": transformers.__version__}, f, indent=2); f.write("\n")
    shutil.copy(os.path.join(SRC, "tokenizer.json"), os.path.join(out, "tokenizer.json"))
    special = lambda s: {"content": s, "lstrip": False, "normalized": False, "rstrip": False,
                         "single_word": False, "special": True}
    with open(os.path.join(out, "tokenizer_config.json"), "w") as f:
        json.dump({"added_tokens_decoder": {str(BOS): special("<|begin_of_text|>"), str(EOS): special("<|end_of_text|>")},
                   "bos_token": "<|begin_of_text|>", "clean_up_tokenization_spaces": True,
                   "eos_token": "<|end_of_text|>", "model_input_names": ["input_ids", "attention_mask"],
                   "model_max_length": SIZE["max_position_embeddings"], "tokenizer_class": "PreTrainedTokenizerFast"},
                  f, indent=2); f.write("\n")
    shards = sorted(n for n in os.listdir(out) if n.startswith("model") and n.endswith(".safetensors"))
    if len(shards) != 2 or not os.path.exists(os.path.join(out, "model.safetensors.index.json")):
        log(f"WARNING: {out} has shards {shards}; wanted 2 and an index")
    return state, shards


def reload_and_check(model, state, out, dev, ids):
    """Loads OUT in fp32 (eager) from the transformers-4 config and checks it is
    the saved model: llama3 rope, tied head, the logits of the saved weights."""
    ref = LlamaForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager").to(dev).eval()
    rel = check_rope(ref, f"{out}/config.json reloaded")
    if not torch.equal(ref.lm_head.weight, ref.model.embed_tokens.weight):
        die(f"{out}: the reloaded lm_head is not the embedding (tie_word_embeddings)")
    mine = LlamaForCausalLM(model.config).to(dev)  # fp32, its own fp32 rotary frequencies
    mine.load_state_dict({k: v.float() for k, v in state.items()})
    mine.eval()
    with torch.no_grad():
        a, b = ref(ids).logits, mine(ids).logits
    d = (a - b).abs().max().item()
    if not d <= 1e-3:
        die(f"{out}: reloaded logits differ from the saved weights' by {d:.3g}")
    log(f"reload of {out}: rope rel err {rel:.2g}, logits max diff {d:.2g} vs the saved weights")
    del mine
    return ref


def protocol_ppl(model, va, dev, windows):
    tot, n = 0.0, 0
    with torch.no_grad():
        for i in range(0, 256 * windows, 256):
            x = va[i:i + 257].unsqueeze(0).to(dev)
            lg = model(x[:, :-1]).logits.float()
            tot += F.cross_entropy(lg[0], x[0, 1:], reduction="sum").item(); n += 256
    return math.exp(tot / n), n


def write_outputs(model, out, ids, va, dev, windows, metrics):
    """Saves model to out, reloads it in fp32 (eager) and writes
    reference.safetensors and teacher_metrics.json (perplexity over
    windows[0] and windows[1] windows). Returns the perplexities and size."""
    was = model.training
    model.eval()
    state, shards = save(model, out)
    log(f"saved {shards} to {out}")
    ref = reload_and_check(model, state, out, dev, ids)
    o = ref(ids, output_hidden_states=True, output_attentions=True)
    R = {"input_ids": ids.to(torch.int64).cpu().contiguous(), "logits": o.logits.detach().float().cpu().contiguous()}
    for i, h in enumerate(o.hidden_states):
        R[f"hidden_states.{i}"] = h.detach().float().cpu().contiguous()
    for i, a in enumerate(o.attentions):
        R[f"attentions.{i}"] = a.detach().float().cpu().contiguous()
    if len(o.hidden_states) != SIZE["num_hidden_layers"] + 1 or len(o.attentions) != SIZE["num_hidden_layers"]:
        die(f"transformers returned {len(o.hidden_states)} hidden states and {len(o.attentions)} attentions")
    ref.zero_grad()
    lg = ref(ids).logits
    loss = F.cross_entropy(lg[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
    loss.backward()
    R["loss"] = loss.detach().float().cpu().reshape(1)
    params = dict(ref.named_parameters())
    for n_ in GRADS:
        R["grad." + n_] = params[n_].grad.detach().float().cpu().contiguous()
    for k, v in R.items():
        if v.is_floating_point() and not torch.isfinite(v).all():
            die(f"reference tensor {k} is not finite")
    save_file(R, os.path.join(out, "reference.safetensors"))
    log(f"reference.safetensors: loss {loss.item():.5f}, {len(R)} tensors")
    ref.zero_grad(set_to_none=True)
    ppl_a, n_a = protocol_ppl(ref, va, dev, windows[0])
    ppl_b, _ = protocol_ppl(ref, va, dev, windows[1])
    metrics = dict(metrics, val_tokens_scored=n_a, val_ppl_fp32_seq256=ppl_a,
                   **{f"val_ppl_fp32_seq256_{windows[1]}w": ppl_b}, reference_loss=loss.item(), shards=shards)
    with open(os.path.join(out, "teacher_metrics.json"), "w") as f:
        json.dump(metrics, f, indent=1); f.write("\n")
    size = sum(os.path.getsize(os.path.join(out, n)) for n in os.listdir(out))
    model.train(was)
    del ref
    return ppl_a, ppl_b, shards, size


def main():
    if len(sys.argv) not in (2, 3):
        die("usage: python3 bench/torch/make_llama_teacher.py OUT_DIR [STEPS]")
    out = sys.argv[1]
    steps = int(sys.argv[2]) if len(sys.argv) == 3 else 3000
    dev = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.cuda.get_device_name(0) if dev == "cuda" else "cpu"
    log("torch", torch.__version__, "transformers", transformers.__version__, "device", device)
    meta = json.load(open(os.path.join(SRC, "tokens.json")))
    tr, va = load_stream("train", meta), load_stream("val", meta)
    log(f"tokens train {len(tr)} val {len(va)}")
    tok_check = check_tokenizer(va)

    torch.manual_seed(SEED)
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    cfg = make_config()
    model = LlamaForCausalLM(cfg).to(dev)
    check_rope(model, "the new model")
    nparams = sum(p.numel() for p in model.parameters())
    log(f"params {nparams} (tied head), config rope {getattr(cfg, 'rope_parameters', None) or getattr(cfg, 'rope_scaling', None)}")
    g = torch.Generator().manual_seed(7)
    ix = torch.randint(0, len(va) - 64, (2,), generator=g)
    ids = torch.stack([va[i:i + 48] for i in ix]).to(dev)

    # Dry run of everything after training, on the untrained model.
    dry = f"/tmp/make_llama_teacher_dryrun_{os.getpid()}"
    write_outputs(model, dry, ids, va, dev, (2, 1), {})
    shutil.rmtree(dry, ignore_errors=True)
    log("dry run of saving, reloading and the references passed")

    # Training.
    opt = torch.optim.AdamW(model.parameters(), lr=LR, betas=(0.9, 0.95), weight_decay=0.1)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1, (s + 1) / WARM) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1, s / steps)))))
    gen = torch.Generator().manual_seed(SEED)
    trd, vad = tr.to(dev), va.to(dev)
    ar = torch.arange(SEQ, device=dev)

    def batch(data, b, generator):
        i = torch.randint(0, len(data) - SEQ - 1, (b,), generator=generator).to(dev)
        return data[i[:, None] + ar]

    @torch.no_grad()
    def val_loss(n=40):
        model.eval(); gv = torch.Generator().manual_seed(1); tot = 0.0
        for _ in range(n):
            x = batch(vad, 16, gv)
            with torch.autocast(dev, dtype=torch.bfloat16):
                tot += model(x, labels=x).loss.item()
        model.train(); return tot / n

    model.train()
    t_train, train_log = time.time(), []
    for step in range(steps):
        x = batch(trd, BSZ, gen)
        with torch.autocast(dev, dtype=torch.bfloat16):
            loss = model(x, labels=x).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step(); opt.zero_grad(set_to_none=True); sched.step()
        if step % 250 == 0 or step == steps - 1:
            tl = loss.item()
            if not math.isfinite(tl):
                die(f"training loss is {tl} at step {step}")
            vl = val_loss()
            train_log.append({"step": step, "train_loss": tl, "val_loss": vl, "val_ppl": math.exp(vl),
                              "s": round(time.time() - t_train, 1)})
            log(train_log[-1])
    train_s = time.time() - t_train

    metrics = {"config": config4(), "train_log": train_log,
               "train_tokens": len(tr), "val_tokens": len(va), "tokens_seen": steps * BSZ * SEQ,
               "steps": steps, "batch": BSZ, "seq": SEQ, "lr": LR, "warmup": WARM, "schedule": "cosine to 0.1",
               "optimizer": "AdamW(0.9, 0.95), weight decay 0.1, clip 1.0, bf16 autocast, fp32 master weights",
               "seed": SEED, "params": nparams, "train_s": round(train_s, 1), "tokenizer_check": tok_check,
               "torch": torch.__version__, "transformers": transformers.__version__, "device": device,
               "made_by": "bench/torch/make_llama_teacher.py"}
    ppl200, ppl100, shards, size = write_outputs(model, out, ids, va, dev, (200, 100), metrics)
    if not (math.isfinite(ppl200) and ppl200 < VOCAB):
        die(f"held-out perplexity {ppl200} is not a trained model's")
    log(f"val ppl fp32 (200 windows) {ppl200:.3f}, (100 windows) {ppl100:.3f}; "
        f"{steps * BSZ * SEQ} tokens seen in {train_s:.0f}s; {out} holds {size / 1e6:.1f} MB")
    print(json.dumps({"out": out, "val_ppl_200w": round(ppl200, 3), "val_ppl_100w": round(ppl100, 3),
                      "tokens_seen": steps * BSZ * SEQ, "train_s": round(train_s, 1), "shards": shards,
                      "bytes": size, "device": device}), flush=True)


if __name__ == "__main__":
    main()
