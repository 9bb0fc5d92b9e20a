"""A Llama-family causal LM in plain torch, for machines without transformers
(the CPU peer of issue 17): reads a Hugging Face folder's config.json and
safetensors weights and computes what transformers' LlamaForCausalLM /
Qwen2ForCausalLM / MistralForCausalLM compute in float32 with eager attention.

    model = load("TEACHER_DIR")            # float32, eval mode
    out = model(ids, output_hidden_states=True, output_attentions=True)
    out.logits, out.hidden_states, out.attentions

The module tree and names follow transformers' (model.embed_tokens,
model.layers[i].self_attn.{q,k,v,o}_proj, .input_layernorm, .mlp.{gate,up,down}_proj,
model.norm, lm_head), so code written for transformers' models (hooks on
self_attn, load_state_dict of an MLP) works on it unchanged.

config.json: transformers-4 keys (rope_theta, rope_scaling with rope_type or
type) or transformers-5 keys (rope_parameters); GQA (num_key_value_heads);
head_dim when it differs from hidden/heads; attention_bias and mlp_bias
(Qwen2: q/k/v biases, none on o); tie_word_embeddings; Mistral's
sliding_window, Qwen2's use_sliding_window/layer_types; rope types default,
linear, llama3 and yarn, computed as transformers' rope utilities do.
Weights: model.safetensors or model.safetensors.index.json shards, F32, F16
or BF16, read by read_safetensors below (no safetensors package needed).

    python3 bench/torch/plain_llama.py --selftest [REF_ROOT]

compares logits, hidden states, attention weights and attention outputs with
transformers' own (REF_ROOT/*/reference.safetensors from make_llama_refs.py,
default graphs/models/llama/testdata) and exits 1 on any difference beyond 1e-4.
"""
import json
import math
import os
import struct
import sys
from types import SimpleNamespace

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

FAMILIES = ("llama", "qwen2", "mistral")


# ---------------------------------------------------------------- safetensors

_DTYPES = {"F32": np.float32, "F16": np.float16, "F64": np.float64, "I64": np.int64, "I32": np.int32,
           "BF16": np.uint16, "U8": np.uint8}


def read_safetensors(path):
    """name -> tensor for one .safetensors file (BF16 widened to float32)."""
    with open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 8:
        raise ValueError(f"{path}: {len(raw)} bytes, too short for a safetensors header")
    (n,) = struct.unpack("<Q", raw[:8])
    if 8 + n > len(raw):
        raise ValueError(f"{path}: header length {n} runs past the end of the file ({len(raw)} bytes)")
    header = json.loads(raw[8:8 + n])
    body = memoryview(raw)[8 + n:]
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dt = info["dtype"]
        if dt not in _DTYPES:
            raise ValueError(f"{path}: tensor {name} has dtype {dt}; this reader knows {sorted(_DTYPES)}")
        a, b = info["data_offsets"]
        shape = info["shape"]
        count = int(np.prod(shape)) if shape else 1
        if b > len(body) or b - a != count * np.dtype(_DTYPES[dt]).itemsize:
            raise ValueError(f"{path}: tensor {name} ({dt} {shape}) has data offsets [{a}, {b}) that do not fit its size or the file")
        arr = np.frombuffer(body[a:b], dtype=_DTYPES[dt]).reshape(shape)
        if dt == "BF16":
            arr = (arr.astype(np.uint32) << 16).view(np.float32)
        out[name] = torch.from_numpy(arr.copy())
    return out


def read_weights(d):
    """The weights of a Hugging Face folder: one file or an index of shards."""
    index = os.path.join(d, "model.safetensors.index.json")
    if os.path.exists(index):
        files = sorted(set(json.load(open(index))["weight_map"].values()))
    elif os.path.exists(os.path.join(d, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"{d}: neither model.safetensors nor model.safetensors.index.json")
    w = {}
    for f in files:
        w.update(read_safetensors(os.path.join(d, f)))
    return w


# ---------------------------------------------------------------- config

def read_config(d):
    """config.json -> a namespace with every key the model needs, defaults filled
    as transformers fills them; rope settings normalised to c.rope (a dict
    with rope_type and rope_theta)."""
    path = os.path.join(d, "config.json")
    raw = json.load(open(path))
    mt = raw.get("model_type", "llama")
    if mt not in FAMILIES:
        raise ValueError(f"{path}: model_type {mt!r}; this teacher knows {FAMILIES}")
    if raw.get("hidden_act", "silu") != "silu":
        raise ValueError(f"{path}: hidden_act {raw['hidden_act']!r}; only silu (SwiGLU) is supported")
    c = SimpleNamespace(**raw)
    c.model_type = mt
    c.head_dim = raw.get("head_dim") or raw["hidden_size"] // raw["num_attention_heads"]
    c.num_key_value_heads = raw.get("num_key_value_heads") or raw["num_attention_heads"]
    c.tie_word_embeddings = bool(raw.get("tie_word_embeddings", mt != "mistral" and mt != "llama"))
    c.mlp_bias = bool(raw.get("mlp_bias", False))
    c.rms_norm_eps = raw.get("rms_norm_eps", 1e-6)
    c.max_position_embeddings = raw.get("max_position_embeddings", 2048)
    c.eos_token_id = raw.get("eos_token_id")
    if mt == "qwen2":
        c.qkv_bias, c.o_bias = True, False
    else:
        c.qkv_bias = c.o_bias = bool(raw.get("attention_bias", False))
    # Rope: transformers 5 keeps everything in rope_parameters; transformers 4
    # has rope_theta beside rope_scaling (whose kind is rope_type, or type).
    if "rope_parameters" in raw and raw["rope_parameters"]:
        rope = dict(raw["rope_parameters"])
    else:
        rope = dict(raw.get("rope_scaling") or {})
        rope["rope_theta"] = raw.get("rope_theta", 10000.0)
    rope["rope_type"] = rope.pop("type", None) or rope.get("rope_type") or "default"
    if rope.get("partial_rotary_factor", raw.get("partial_rotary_factor", 1.0)) != 1.0:
        raise ValueError(f"{path}: partial_rotary_factor is not supported")
    c.rope = rope
    # Sliding windows per layer (None: full causal attention).
    L = raw["num_hidden_layers"]
    win = raw.get("sliding_window")
    if mt == "mistral":
        c.windows = [win] * L
    elif mt == "qwen2":
        types = raw.get("layer_types")
        if types is None:
            use = raw.get("use_sliding_window", False)
            mwl = raw.get("max_window_layers", L)
            types = ["sliding_attention" if use and win and i >= mwl else "full_attention" for i in range(L)]
        c.windows = [win if t == "sliding_attention" else None for t in types]
    else:
        c.windows = [None] * L
    return c


def rope_inv_freq(c):
    """(inv_freq [head_dim/2] float32, attention scaling) as transformers'
    ROPE_INIT_FUNCTIONS compute them."""
    r, dim = c.rope, c.head_dim
    base = float(r["rope_theta"])
    inv = 1.0 / (base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim))
    kind = r["rope_type"]
    if kind == "default":
        return inv, 1.0
    if kind == "linear":
        return inv / float(r["factor"]), 1.0
    if kind == "llama3":
        factor, lo, hi = float(r["factor"]), float(r["low_freq_factor"]), float(r["high_freq_factor"])
        old = float(r["original_max_position_embeddings"])
        lo_wl, hi_wl = old / lo, old / hi
        wl = 2 * math.pi / inv
        out = torch.where(wl > lo_wl, inv / factor, inv)
        smooth = (old / wl - lo) / (hi - lo)
        smoothed = (1 - smooth) * out / factor + smooth * out
        medium = ~(wl < hi_wl) * ~(wl > lo_wl)
        return torch.where(medium, smoothed, out), 1.0
    if kind == "yarn":
        factor = float(r["factor"])
        orig = r.get("original_max_position_embeddings") or c.max_position_embeddings
        att = r.get("attention_factor")
        mscale, mscale_all = r.get("mscale"), r.get("mscale_all_dim")

        def get_mscale(scale, m=1.0):
            return 1.0 if scale <= 1 else 0.1 * m * math.log(scale) + 1.0

        if att is None:
            att = get_mscale(factor, mscale) / get_mscale(factor, mscale_all) if mscale and mscale_all else get_mscale(factor)
        fast, slow = r.get("beta_fast") or 32, r.get("beta_slow") or 1

        def corr_dim(rot):
            return (dim * math.log(orig / (rot * 2 * math.pi))) / (2 * math.log(base))

        low, high = corr_dim(fast), corr_dim(slow)
        if r.get("truncate", True):
            low, high = math.floor(low), math.ceil(high)
        low, high = max(low, 0), min(high, dim - 1)
        if low == high:
            high += 0.001
        ramp = torch.clamp((torch.arange(dim // 2, dtype=torch.float32) - low) / (high - low), 0, 1)
        extra = 1 - ramp  # share of the unscaled (extrapolated) frequency
        pos = base ** (torch.arange(0, dim, 2, dtype=torch.int64).float() / dim)
        return (1.0 / (factor * pos)) * (1 - extra) + (1.0 / pos) * extra, float(att)
    raise ValueError(f"rope type {kind!r} is not supported (default, linear, llama3, yarn)")


# ---------------------------------------------------------------- modules

class RMSNorm(nn.Module):
    def __init__(self, d, eps):
        super().__init__()
        self.weight, self.eps = nn.Parameter(torch.ones(d)), eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class SwiGLU(nn.Module):
    def __init__(self, d, f, bias):
        super().__init__()
        self.gate_proj, self.up_proj = nn.Linear(d, f, bias=bias), nn.Linear(d, f, bias=bias)
        self.down_proj = nn.Linear(f, d, bias=bias)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat((-x[..., h:], x[..., :h]), -1)


class Attention(nn.Module):
    def __init__(self, c, window):
        super().__init__()
        d, H, K, hd = c.hidden_size, c.num_attention_heads, c.num_key_value_heads, c.head_dim
        self.H, self.K, self.hd, self.window = H, K, hd, window
        self.q_proj = nn.Linear(d, H * hd, bias=c.qkv_bias)
        self.k_proj = nn.Linear(d, K * hd, bias=c.qkv_bias)
        self.v_proj = nn.Linear(d, K * hd, bias=c.qkv_bias)
        self.o_proj = nn.Linear(H * hd, d, bias=c.o_bias)

    def forward(self, h, cos, sin):
        b, T, _ = h.shape
        q = self.q_proj(h).view(b, T, self.H, self.hd).transpose(1, 2)
        k = self.k_proj(h).view(b, T, self.K, self.hd).transpose(1, 2)
        v = self.v_proj(h).view(b, T, self.K, self.hd).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        r = self.H // self.K  # query heads per key/value head, consecutive
        k, v = k.repeat_interleave(r, 1), v.repeat_interleave(r, 1)
        s = q @ k.transpose(2, 3) * self.hd ** -0.5
        i = torch.arange(T, device=h.device)
        keep = i[None, :] <= i[:, None]
        if self.window:
            keep = keep & (i[None, :] > i[:, None] - self.window)
        s = s.masked_fill(~keep, torch.finfo(s.dtype).min)
        w = F.softmax(s, -1, dtype=torch.float32).to(q.dtype)
        o = (w @ v).transpose(1, 2).reshape(b, T, self.H * self.hd)
        return self.o_proj(o), w


class DecoderLayer(nn.Module):
    def __init__(self, c, window):
        super().__init__()
        self.input_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.self_attn = Attention(c, window)
        self.post_attention_layernorm = RMSNorm(c.hidden_size, c.rms_norm_eps)
        self.mlp = SwiGLU(c.hidden_size, c.intermediate_size, c.mlp_bias)

    def forward(self, h, cos, sin):
        a, w = self.self_attn(self.input_layernorm(h), cos, sin)
        h = h + a
        return h + self.mlp(self.post_attention_layernorm(h)), w


class Model(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embed_tokens = nn.Embedding(c.vocab_size, c.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(c, w) for w in c.windows])
        self.norm = RMSNorm(c.hidden_size, c.rms_norm_eps)


class CausalLM(nn.Module):
    """transformers' *ForCausalLM forward in float32 with eager attention."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = Model(c)
        self.lm_head = nn.Linear(c.hidden_size, c.vocab_size, bias=False)
        if c.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        inv, self.att_scale = rope_inv_freq(c)
        self.register_buffer("inv_freq", inv, persistent=False)

    def forward(self, input_ids, output_hidden_states=False, output_attentions=False):
        T = input_ids.shape[1]
        pos = torch.arange(T, device=input_ids.device, dtype=torch.float32)
        freqs = pos[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), -1)
        cos, sin = emb.cos() * self.att_scale, emb.sin() * self.att_scale
        h = self.model.embed_tokens(input_ids)
        hs, ws = [h], []
        for layer in self.model.layers:
            h, w = layer(h, cos, sin)
            hs.append(h)
            ws.append(w)
        h = self.model.norm(h)
        hs[-1] = h  # transformers' last hidden state is the normed one
        return SimpleNamespace(logits=self.lm_head(h), hidden_states=tuple(hs) if output_hidden_states else None,
                               attentions=tuple(ws) if output_attentions else None)


def load(d):
    """The float32 model of a Hugging Face folder, in eval mode."""
    c = read_config(d)
    m = CausalLM(c)
    w = {k: v.float() for k, v in read_weights(d).items()}
    if c.tie_word_embeddings:
        w.pop("lm_head.weight", None)
    want = {k for k in m.state_dict() if not (c.tie_word_embeddings and k == "lm_head.weight")}
    missing, extra = sorted(want - set(w)), sorted(set(w) - want)
    if missing or extra:
        raise ValueError(f"{d}: weights do not match config.json: missing {missing[:5]}, unexpected {extra[:5]}")
    for k, v in w.items():
        if tuple(v.shape) != tuple(m.state_dict()[k].shape):
            raise ValueError(f"{d}: tensor {k} has shape {tuple(v.shape)}, config.json implies {tuple(m.state_dict()[k].shape)}")
    m.load_state_dict(w, strict=False)
    return m.eval()


# ---------------------------------------------------------------- self-test

def max_err(a, b):
    return (a.double() - b.double()).abs().max().item()


def selftest(root, tol=1e-4):
    """Every reference under root: logits, hidden states, attention weights and
    attention outputs against transformers' (absolute, float32). Returns the
    names checked; raises SystemExit(1) on the first failure."""
    names = sorted(n for n in os.listdir(root) if os.path.exists(os.path.join(root, n, "reference.safetensors")))
    if not names:
        print(f"plain_llama: no */reference.safetensors under {root}", file=sys.stderr)
        raise SystemExit(1)
    for n in names:
        d = os.path.join(root, n)
        ref = read_safetensors(os.path.join(d, "reference.safetensors"))
        m = load(d)
        outs = {}
        hooks = [l.self_attn.register_forward_hook(lambda mod, a, o, i=i: outs.__setitem__(i, o[0]))
                 for i, l in enumerate(m.model.layers)]
        with torch.no_grad():
            o = m(ref["input_ids"], output_hidden_states=True, output_attentions=True)
        for h in hooks:
            h.remove()
        errs = {"logits": max_err(o.logits, ref["logits"])}
        for i, h in enumerate(o.hidden_states):
            errs[f"hidden_states.{i}"] = max_err(h, ref[f"hidden_states.{i}"])
        for i, w in enumerate(o.attentions):
            errs[f"attentions.{i}"] = max_err(w, ref[f"attentions.{i}"])
            if f"attn_out.{i}" in ref:
                errs[f"attn_out.{i}"] = max_err(outs[i], ref[f"attn_out.{i}"])
        worst = max(errs, key=lambda k: errs[k] if errs[k] == errs[k] else math.inf)
        ok = all(e <= tol for e in errs.values())  # False for NaN
        print(json.dumps({"plain_teacher_check": n, "rope": m.config.rope["rope_type"], "windows": m.config.windows,
                          "logits_max_abs_err": errs["logits"], "worst": worst, "worst_err": errs[worst], "tol": tol, "ok": ok}),
              flush=True)
        if not ok:
            print(f"plain_llama: {n}: {worst} differs from transformers by {errs[worst]:.3g} > {tol:g}", file=sys.stderr)
            raise SystemExit(1)
    return names


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "--selftest":
        here = os.path.dirname(os.path.abspath(__file__))
        selftest(sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "..", "..", "graphs", "models", "llama", "testdata"))
    else:
        print(__doc__)
        sys.exit(2)
