"""Small transformers references for mohawk's Llama-family teachers (issue 17).

Run on the GPU machine (which has torch and transformers; CPU is enough):

    python3 bench/torch/make_llama_refs.py OUT_DIR

For each family below it builds a tiny randomly initialised model with
transformers, saves it with save_pretrained (config.json in the installed
transformers' own keys, model.safetensors in float32), and writes
reference.safetensors beside it:

    input_ids        int64 [2, T]
    logits           float32 [2, T, V]   (eager attention, float32)
    hidden_states.i  float32 [2, T, D]   i = 0..L (transformers' hidden_states)
    attentions.i     float32 [2, Hq, T, T]
    attn_out.i       float32 [2, T, D]   layer i's self_attn output (after o_proj)
    loss             float32 []          mean next-token cross-entropy
    grad.<name>      float32             d loss / d parameter, for a few parameters

and meta.json with the versions used. Nothing here is part of the product:
the files are test data that mohawk's Go graphs are compared against.
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import save_file


def rope(theta, **scaling):
    """rope_parameters in transformers-5 form (rope_type + rope_theta + extras)."""
    p = {"rope_type": scaling.pop("rope_type", "default"), "rope_theta": theta}
    p.update(scaling)
    return p


FAMILIES = {
    # Llama 3.x shape: GQA 4/2, head_dim 24 != hidden/heads (64/4 = 16),
    # llama3 rope scaling, untied head, no biases.
    "llama-gqa-llama3": (
        "LlamaConfig", "LlamaForCausalLM",
        dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=256,
             rms_norm_eps=1e-5, tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
             bos_token_id=1, eos_token_id=2,
             rope_parameters=rope(500000.0, rope_type="llama3", factor=8.0, low_freq_factor=1.0,
                                  high_freq_factor=4.0, original_max_position_embeddings=16))),
    # SmolLM / TinyLlama-like: MHA, tied head, linear rope scaling, biases on
    # attention and MLP (attention_bias, mlp_bias).
    "llama-linear-bias": (
        "LlamaConfig", "LlamaForCausalLM",
        dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
             rms_norm_eps=1e-6, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
             rope_parameters=rope(10000.0, rope_type="linear", factor=2.0))),
    # YaRN scaling (Qwen2.5 long-context configs use it).
    "llama-yarn": (
        "LlamaConfig", "LlamaForCausalLM",
        dict(vocab_size=512, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=64,
             rms_norm_eps=1e-6, tie_word_embeddings=False,
             rope_parameters=rope(10000.0, rope_type="yarn", factor=4.0,
                                  original_max_position_embeddings=16))),
    # Qwen2: q/k/v biases, no o bias, tied embeddings, GQA 4/2.
    "qwen2": (
        "Qwen2Config", "Qwen2ForCausalLM",
        dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
             rms_norm_eps=1e-6, tie_word_embeddings=True,
             rope_parameters=rope(1000000.0))),
    # Mistral: sliding window 16 over T = 48, GQA 4/1.
    "mistral-window": (
        "MistralConfig", "MistralForCausalLM",
        dict(vocab_size=512, hidden_size=64, intermediate_size=160, num_hidden_layers=2,
             num_attention_heads=4, num_key_value_heads=1, max_position_embeddings=256,
             rms_norm_eps=1e-5, tie_word_embeddings=False, sliding_window=16,
             rope_parameters=rope(10000.0))),
}

T = 48


def make(out, name, cfg_cls, model_cls, kw):
    torch.manual_seed(1234)
    cfg_type = getattr(transformers, cfg_cls)
    try:
        cfg = cfg_type(**kw)
    except TypeError:
        # transformers 4: rope_theta and rope_scaling instead of rope_parameters.
        kw = dict(kw)
        p = dict(kw.pop("rope_parameters"))
        kw["rope_theta"] = p.pop("rope_theta")
        if p.get("rope_type", "default") != "default":
            kw["rope_scaling"] = p
        cfg = cfg_type(**kw)
    cfg._attn_implementation = "eager"
    model = getattr(transformers, model_cls)(cfg).float().eval()
    with torch.no_grad():
        # Larger than the default init so that every layer matters.
        for n, p in model.named_parameters():
            if n.endswith("bias"):
                p.normal_(0, 0.1)
            elif "norm" in n:
                p.copy_(1 + 0.2 * torch.randn_like(p))
    d = os.path.join(out, name)
    os.makedirs(d, exist_ok=True)
    model.save_pretrained(d, safe_serialization=True)

    g = torch.Generator().manual_seed(7)
    ids = torch.randint(0, kw["vocab_size"], (2, T), generator=g)
    attn_out = {}
    hooks = []
    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.self_attn.register_forward_hook(
            lambda m, a, o, i=i: attn_out.__setitem__(i, o[0].detach().clone())))
    res = model(input_ids=ids, output_hidden_states=True, output_attentions=True)
    for h in hooks:
        h.remove()
    logits = res.logits
    loss = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), ids[:, 1:].reshape(-1))
    loss.backward()
    t = {"input_ids": ids.contiguous(), "logits": logits.detach().contiguous(), "loss": loss.detach().reshape(())}
    for i, h in enumerate(res.hidden_states):
        t[f"hidden_states.{i}"] = h.detach().contiguous()
    for i, a in enumerate(res.attentions):
        t[f"attentions.{i}"] = a.detach().contiguous()
    for i, a in attn_out.items():
        t[f"attn_out.{i}"] = a.contiguous()
    params = dict(model.named_parameters())
    for n in ["model.embed_tokens.weight", "model.layers.0.self_attn.q_proj.weight",
              "model.layers.0.self_attn.k_proj.weight", "model.layers.1.self_attn.v_proj.weight",
              "model.layers.1.mlp.gate_proj.weight", "model.layers.0.input_layernorm.weight",
              "model.norm.weight", "lm_head.weight", "model.layers.0.self_attn.q_proj.bias"]:
        if n in params and params[n].grad is not None:
            t["grad." + n] = params[n].grad.detach().contiguous()
    save_file(t, os.path.join(d, "reference.safetensors"))
    with open(os.path.join(d, "meta.json"), "w") as f:
        json.dump({"torch": torch.__version__, "transformers": transformers.__version__,
                   "script": "bench/torch/make_llama_refs.py", "family": name, "T": T,
                   "attn_implementation": "eager", "dtype": "float32"}, f, indent=1)
    print(name, "loss", float(loss), "files", sorted(os.listdir(d)))


def main():
    out = sys.argv[1]
    for name, (c, m, kw) in FAMILIES.items():
        make(out, name, c, m, kw)


if __name__ == "__main__":
    main()
