"""MOHAWK at small scale for a Llama-family teacher: the PyTorch peer of
mohawk's Llama -> Llamba distillation (issue 17), as
../shared/tools/torch-reference/mohawk_torch.py is for Phi -> Phi-Mamba.

    python3 bench/torch/mohawk_llama_torch.py TEACHER_DIR TRAIN VAL RECIPE [BUDGET]
        [--init mohawk|attention] [--qk-heads G] [--save DIR]
    python3 bench/torch/mohawk_llama_torch.py --selftest      (CPU, no transformers)

TEACHER_DIR is a Hugging Face LlamaForCausalLM checkpoint (loaded by
transformers in fp32 with eager attention, or by plain_llama.py when
transformers is not installed or --teacher-impl plain). TRAIN and VAL are id
streams (*.u16.gz from llama_tokens.js, e.g. bench/torch/llama-tiny-en/
train.u16.gz, or *.ids from `pipeline tokenize`) or text files (*.txt,
tokenized with TEACHER_DIR/tokenizer.json by the `tokenizers` package: documents split on "\\n\\n", special tokens added, EOS
appended). RECIPE is s123, s23, s3, scratch, a comma list of them, or all.
BUDGET is the token budget per recipe (default 3.3M). --config FILE takes
the recipe's settings from a mohawk config (bench/torch/llama_ablate_cpu.sh).

The student is Llamba as mohawk defines it (graphs/models/llamba,
graphs/models/phimamba/mixer.go, docs/design.md "Llama teachers and Llamba
students"), in plain torch with Cartesia's parameter names:
  block:  h += mixer(RMSNorm_in(h)); h += SwiGLU(RMSNorm_post(h)); final RMSNorm;
          head tied to the embedding when the teacher's is
  mixer:  in_proj -> x|B|C (conv channels), z, a (one per value head);
          depthwise causal conv (width 4, bias) on x|B|C, no activation;
          x [n_v_heads, P], B and C [n_qk_heads, d_state], each B/C head
          serving n_v_heads/n_qk_heads consecutive value heads;
          log a = -softplus(a); y = SSD(x, log a, B, C) + D*x;
          out = out_proj(y * silu(z + z_bias))
  sizes (llamba.ForTeacher): n_v_heads = n_qk_heads = teacher heads, d_state =
          head dim, expand 1 (d_inner = heads * head dim), chunk 128.
  init:   embedding, norms, SwiGLU MLPs and head copied from the teacher; every
          mixer has an identity conv (last tap 1, bias 0), an open gate (z rows
          of in_proj 0, z_bias 1.2785), D = 1 and nn.Linear defaults elsewhere
          (--init mohawk, mohawk's default); --init attention then applies
          llamba.AttentionInit: C head h <- q_proj head h, B head h <- k_proj
          head h/r, x head h <- v_proj head h/r (r = heads / KV heads),
          conv bias <- the q/k/v biases, out_proj <- o_proj.
          scratch: every matrix N(0, 0.02^2), norms 1, the mixer's conv, gate
          and D as above (pipeline.NewStudent's InitScratch).

Stages and budgets as mohawk_torch.py: seq 256, 16 sequences per step, AdamW
(0.9, 0.95), weight decay 0.1, clip 1, WSD schedule (10% warm-up, 80% flat,
10% decay). s123: 10% Stage 1 (Frobenius distance of each layer's mixing
matrix to the teacher's attention matrix, from the teacher's normed input,
lr 1e-3, mixers only), 20% Stage 2 (L2 distance of each mixer's output to the
teacher's attention output, lr 1e-3, mixers only), 70% Stage 3 (soft
cross-entropy to the teacher's logits, lr 5e-4, all parameters); s23: 30%
Stage 2, 70% Stage 3; s3: 100% Stage 3; scratch: next-token loss from a
random student, lr 1e-3. Perplexity: 100 windows of 256 of VAL (the
protocol of ../shared/README.md). One JSON line per stage and one per recipe.

Before training it checks itself: chunked SSD = materialised mixing matrix =
the token-by-token recurrence (with grouped B/C heads and a length that is
not a multiple of the chunk); a grouped-head mixer equals an ungrouped one
with its B/C rows repeated; after attention init, the mixer's x, B and C are
the teacher's v, k (per group) and q; and the transferred student with its
mixers' out_proj zeroed reproduces the teacher's logits with every attention
output zeroed. A non-finite loss stops the run with an error.
"""
import argparse
import copy
import gzip
import hashlib
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import plain_llama  # noqa: E402  (the plain-torch teacher, beside this file)
from plain_llama import RMSNorm, SwiGLU  # noqa: E402

GATE_BIAS = 1.2785  # SiLU(1.2785) ~ 1: the open gate (pipeline.GateBias)


def die(msg):
    print("mohawk_llama_torch.py: " + msg, file=sys.stderr, flush=True)
    sys.exit(1)


class Cfg:
    """Llamba sizes (hfconfig.Llamba / llamba.Config)."""

    def __init__(self, vocab, d_model, n_layer, inner, eps, tied, mlp_bias, n_v_heads, n_qk_heads, d_state,
                 expand=1, d_conv=4, chunk=128, conv_bias=True):
        self.vocab, self.d_model, self.n_layer, self.inner, self.eps = vocab, d_model, n_layer, inner, eps
        self.tied, self.mlp_bias = tied, mlp_bias
        self.H, self.G, self.N = n_v_heads, n_qk_heads, d_state
        self.expand, self.d_conv, self.chunk, self.conv_bias = expand, d_conv, chunk, conv_bias
        self.d_inner = expand * d_model
        if self.d_inner % self.H or self.H % self.G:
            raise ValueError(f"d_inner {self.d_inner} must divide by n_v_heads {self.H}, and n_v_heads by n_qk_heads {self.G}")
        self.P = self.d_inner // self.H
        self.conv_ch = self.d_inner + 2 * self.G * self.N
        self.in_proj = self.conv_ch + self.d_inner + self.H

    def to_json(self):
        """Cartesia's config.json layout (hfconfig.Llamba)."""
        return {"vocab_size": self.vocab, "pad_vocab_size_multiple": 1, "tie_embeddings": self.tied, "lm_head_bias": False,
                "d_model": self.d_model, "n_layer": self.n_layer, "resid_dropout": 0.0, "norm_epsilon": self.eps,
                "mlp_cfg": {"intermediate_size": self.inner, "bias": self.mlp_bias, "act_fn": "silu"},
                "ssm_cfg": {"d_state": self.N, "n_v_heads": self.H, "n_qk_heads": self.G, "d_conv": self.d_conv,
                            "conv_bias": self.conv_bias, "expand": self.expand, "chunk_size": self.chunk,
                            "activation": "identity", "bias": False}}


def segsum(a):
    """a [..., T] -> [..., T, T]: S[i, j] = sum_{k=j+1..i} a_k for j <= i, -inf above
    (a difference of one float64 cumulative sum, as mohawk's segsum)."""
    cs = torch.cumsum(a.double(), -1)
    s = (cs[..., :, None] - cs[..., None, :]).to(a.dtype)
    T = a.shape[-1]
    keep = torch.ones(T, T, dtype=torch.bool, device=a.device).tril()
    return s.masked_fill(~keep, -math.inf)


def kernel(B, C, loga):
    """L o (C B^T) [b, H, T, T] for B, C [b, T, H, N], loga [b, T, H]."""
    return torch.einsum("bthn,bshn->bhts", C, B) * torch.exp(segsum(loga.transpose(1, 2)))


def ssd_chunked(x, loga, B, C, q):
    """Chunked SSD (chunk q) for x [b, T, H, P], loga [b, T, H], B, C [b, T, H, N]:
    S_t = a_t S_{t-1} + B_t x_t^T, y_t = S_t^T C_t; zero-padded to a multiple of q."""
    b, T, h, p = x.shape
    n = B.shape[-1]
    pad = (-T) % q
    if pad:
        x, B, C = (F.pad(t, (0, 0, 0, 0, 0, pad)) for t in (x, B, C))
        loga = F.pad(loga, (0, 0, 0, pad))
    nc = (T + pad) // q
    xc, Bc, Cc = x.reshape(b, nc, q, h, p), B.reshape(b, nc, q, h, n), C.reshape(b, nc, q, h, n)
    A = loga.reshape(b, nc, q, h).permute(0, 3, 1, 2)  # [b, h, c, q]
    Acs = torch.cumsum(A, -1)
    # 1. Within each chunk.
    scores = torch.einsum("bclhn,bcshn->bhcls", Cc, Bc) * torch.exp(segsum(A))
    y_diag = torch.einsum("bhcls,bcshp->bclhp", scores, xc)
    # 2. Each chunk's own final state.
    decay = torch.exp(Acs[..., -1:] - Acs)  # [b, h, c, q]
    states = torch.einsum("bclhn,bhcl,bclhp->bchnp", Bc, decay, xc)
    # 3. States entering each chunk.
    states = torch.cat([torch.zeros_like(states[:, :1]), states], 1)  # [b, c+1, h, n, p]
    chunk_decay = torch.exp(segsum(F.pad(Acs[..., -1], (1, 0))))  # [b, h, c+1, c+1]
    entering = torch.einsum("bhzc,bchnp->bzhnp", chunk_decay, states)[:, :-1]
    # 4. Their contribution.
    y_off = torch.einsum("bclhn,bchnp,bhcl->bclhp", Cc, entering, torch.exp(Acs))
    return (y_diag + y_off).reshape(b, nc * q, h, p)[:, :T]


def ssd_recurrent(x, loga, B, C):
    """The same, one token at a time (self-test reference)."""
    b, T, h, p = x.shape
    S = x.new_zeros(b, h, B.shape[-1], p)
    ys = []
    for t in range(T):
        S = torch.exp(loga[:, t])[:, :, None, None] * S + B[:, t, :, :, None] * x[:, t, :, None, :]
        ys.append(torch.einsum("bhn,bhnp->bhp", C[:, t], S))
    return torch.stack(ys, 1)


class Mixer(nn.Module):
    """Discrete Mamba-2 with grouped B/C heads (phimamba.Mixer)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.in_proj = nn.Linear(c.d_model, c.in_proj, bias=False)
        self.conv1d = nn.Conv1d(c.conv_ch, c.conv_ch, c.d_conv, groups=c.conv_ch, padding=c.d_conv - 1, bias=c.conv_bias)
        self.z_bias = nn.Parameter(torch.full((c.d_inner,), GATE_BIAS))
        self.D = nn.Parameter(torch.ones(c.H))
        self.out_proj = nn.Linear(c.d_inner, c.d_model, bias=False)
        with torch.no_grad():
            self.conv1d.weight.zero_()
            self.conv1d.weight[:, 0, -1] = 1
            if self.conv1d.bias is not None:
                self.conv1d.bias.zero_()
            self.open_gate()

    @torch.no_grad()
    def open_gate(self):
        self.in_proj.weight[self.c.conv_ch:self.c.conv_ch + self.c.d_inner].zero_()

    def parts(self, u):
        c = self.c
        b, T, _ = u.shape
        xbc, z, a = self.in_proj(u).split([c.conv_ch, c.d_inner, c.H], -1)
        xbc = self.conv1d(xbc.transpose(1, 2))[..., :T].transpose(1, 2)
        x, B, C = xbc.split([c.d_inner, c.G * c.N, c.G * c.N], -1)
        r = c.H // c.G  # value heads per B/C head, consecutive
        B = B.reshape(b, T, c.G, c.N).repeat_interleave(r, dim=2)
        C = C.reshape(b, T, c.G, c.N).repeat_interleave(r, dim=2)
        return x.reshape(b, T, c.H, c.P), B, C, -F.softplus(a), z

    def matrix(self, u):
        """M = L o (C B^T) + D I [b, H, T, T] (row = output position)."""
        x, B, C, loga, _ = self.parts(u)
        return kernel(B, C, loga) + torch.diag_embed(self.D[None, :, None].expand(u.shape[0], -1, u.shape[1]))

    def forward(self, u, form="ssd"):
        x, B, C, loga, z = self.parts(u)
        if form == "ssd":
            y = ssd_chunked(x, loga, B, C, self.c.chunk)
        elif form == "matrix":
            y = torch.einsum("bhts,bshp->bthp", kernel(B, C, loga), x)
        else:
            y = ssd_recurrent(x, loga, B, C)
        y = y + self.D[:, None] * x
        y = y.reshape(*u.shape[:2], self.c.d_inner) * F.silu(z + self.z_bias)
        return self.out_proj(y)


class Layer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.input_layernorm, self.mixer = RMSNorm(c.d_model, c.eps), Mixer(c)
        self.post_attention_layernorm, self.mlp = RMSNorm(c.d_model, c.eps), SwiGLU(c.d_model, c.inner, c.mlp_bias)

    def forward(self, h, form="ssd"):
        h = h + self.mixer(self.input_layernorm(h), form)
        return h + self.mlp(self.post_attention_layernorm(h))


class Backbone(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.embedding = nn.Embedding(c.vocab, c.d_model)
        self.layers = nn.ModuleList([Layer(c) for _ in range(c.n_layer)])
        self.final_layernorm = RMSNorm(c.d_model, c.eps)


class Llamba(nn.Module):
    """Parameter names as Cartesia's (backbone.*, lm_head.weight when untied)."""

    def __init__(self, c):
        super().__init__()
        self.c = c
        self.backbone = Backbone(c)
        if not c.tied:
            self.lm_head = nn.Linear(c.d_model, c.vocab, bias=False)

    def forward(self, ids, form="ssd"):
        h = self.backbone.embedding(ids)
        for layer in self.backbone.layers:
            h = layer(h, form)
        h = self.backbone.final_layernorm(h)
        return F.linear(h, self.backbone.embedding.weight if self.c.tied else self.lm_head.weight)

    def mixers(self):
        return [l.mixer for l in self.backbone.layers]


def for_teacher(tc, qk_heads=None, chunk=128):
    """llamba.ForTeacher for a Llama config (transformers' or plain_llama's)."""
    hd = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
    heads = tc.num_attention_heads
    expand = heads * hd // tc.hidden_size if (heads * hd) % tc.hidden_size == 0 else 1
    return Cfg(vocab=tc.vocab_size, d_model=tc.hidden_size, n_layer=tc.num_hidden_layers, inner=tc.intermediate_size,
               eps=tc.rms_norm_eps, tied=bool(tc.tie_word_embeddings), mlp_bias=bool(getattr(tc, "mlp_bias", False)),
               n_v_heads=heads, n_qk_heads=qk_heads or heads, d_state=hd, expand=expand, chunk=chunk)


@torch.no_grad()
def transfer(st, teacher):
    """llamba.TransferMap: embedding, norms, MLPs, (untied) head."""
    tm = teacher.model
    st.backbone.embedding.weight.copy_(tm.embed_tokens.weight)
    st.backbone.final_layernorm.weight.copy_(tm.norm.weight)
    if not st.c.tied:
        st.lm_head.weight.copy_(teacher.lm_head.weight)
    for sl, tl in zip(st.backbone.layers, tm.layers):
        sl.input_layernorm.weight.copy_(tl.input_layernorm.weight)
        sl.post_attention_layernorm.weight.copy_(tl.post_attention_layernorm.weight)
        sl.mlp.load_state_dict(tl.mlp.state_dict())


@torch.no_grad()
def attention_init(mixer, attn, heads, kv, hd):
    """llamba.AttentionInit for one layer: x|B|C rows of in_proj <- v (per
    group) | k (per group) | q, conv identity with bias <- q/k/v biases,
    out_proj <- o_proj. z and a rows, z_bias and D are left as they are."""
    c = mixer.c
    if c.H != heads or c.G != heads or c.N != hd or c.P != hd or c.d_inner != heads * hd:
        raise ValueError(f"attention init needs n_v_heads = n_qk_heads = {heads} heads and d_state = head dim = {hd}")
    r, d = heads // kv, c.d_model
    per_head = lambda lin, n: lin.weight.reshape(n, hd, d)
    per_bias = lambda lin, n: (lin.bias if lin.bias is not None else lin.weight.new_zeros(n * hd)).reshape(n, hd)
    v = per_head(attn.v_proj, kv).repeat_interleave(r, 0).reshape(heads * hd, d)
    k = per_head(attn.k_proj, kv).repeat_interleave(r, 0).reshape(heads * hd, d)
    q = attn.q_proj.weight
    W = mixer.in_proj.weight
    W[:c.d_inner] = v
    W[c.d_inner:c.d_inner + heads * hd] = k
    W[c.d_inner + heads * hd:c.conv_ch] = q
    mixer.conv1d.weight.zero_()
    mixer.conv1d.weight[:, 0, -1] = 1
    biases = [per_bias(attn.v_proj, kv).repeat_interleave(r, 0).reshape(-1),
              per_bias(attn.k_proj, kv).repeat_interleave(r, 0).reshape(-1), per_bias(attn.q_proj, heads).reshape(-1)]
    if mixer.conv1d.bias is not None:
        mixer.conv1d.bias.copy_(torch.cat(biases))
    elif any(b.abs().max() > 0 for b in biases):
        raise ValueError("the teacher has q/k/v biases, which attention init puts in conv1d.bias; use conv_bias")
    mixer.out_proj.weight.copy_(attn.o_proj.weight)


def scratch_init(st):
    """InitScratch: matrices N(0, 0.02^2), norms 1; mixer conv/gate/D kept."""
    with torch.no_grad():
        for name, p in st.named_parameters():
            if name.endswith("in_proj.weight") or name.endswith("out_proj.weight") or name.endswith("embedding.weight") \
                    or ".mlp." in name and name.endswith("weight") or name == "lm_head.weight":
                p.normal_(0, 0.02)
            elif ".mlp." in name and name.endswith("bias"):
                p.zero_()
        for m in st.mixers():
            m.open_gate()


# ---------------------------------------------------------------- self-tests

class FakeAttn(nn.Module):
    def __init__(self, d, heads, kv, hd, bias):
        super().__init__()
        self.q_proj, self.k_proj = nn.Linear(d, heads * hd, bias=bias), nn.Linear(d, kv * hd, bias=bias)
        self.v_proj, self.o_proj = nn.Linear(d, kv * hd, bias=bias), nn.Linear(heads * hd, d, bias=False)


def rel_err(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def check(name, err, tol):
    ok = err <= tol  # False for NaN
    print(json.dumps({"selfcheck": name, "rel_err": err, "tol": tol, "ok": bool(ok)}), flush=True)
    if not ok:
        die(f"self-check {name} failed: relative error {err:.3g} > {tol:g}")


def selftest_pieces(dev, dtype, tol):
    """Checks that need no teacher. float64 on CPU: tol ~1e-12; fp32: ~1e-4."""
    g = torch.Generator().manual_seed(3)
    c = Cfg(vocab=50, d_model=24, n_layer=1, inner=40, eps=1e-5, tied=True, mlp_bias=False,
            n_v_heads=4, n_qk_heads=2, d_state=8, chunk=16)
    m = Mixer(c).to(dev, dtype)
    with torch.no_grad():  # random everything, so every path matters
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p) * 0.3)
        m.D.copy_(torch.randn(c.H, generator=g, dtype=torch.float64).to(m.D))
    u = torch.randn(2, 50, c.d_model, generator=g, dtype=torch.float64).to(dev, dtype)  # 50: not a multiple of 16
    with torch.no_grad():
        y_ssd, y_mat, y_rec = m(u, "ssd"), m(u, "matrix"), m(u, "recurrent")
        check("ssd_vs_recurrent", rel_err(y_ssd, y_rec), tol)
        check("matrix_vs_recurrent", rel_err(y_mat, y_rec), tol)
        # The mixing matrix applied to x (with D) is the SSM plus D x.
        x, B, C, loga, _ = m.parts(u)
        ym = torch.einsum("bhts,bshp->bthp", m.matrix(u), x)
        check("mixing_matrix", rel_err(ym, ssd_recurrent(x, loga, B, C) + m.D[:, None] * x), tol)
        # Grouped B/C heads = ungrouped heads with B/C rows repeated per group.
        c2 = Cfg(vocab=50, d_model=24, n_layer=1, inner=40, eps=1e-5, tied=True, mlp_bias=False,
                 n_v_heads=4, n_qk_heads=4, d_state=8, chunk=16)
        m2 = Mixer(c2).to(dev, dtype)
        r, N, di = c.H // c.G, c.N, c.d_inner
        idx = [ch for ch in range(di)]
        for part in range(2):  # B then C
            for h in range(c.H):
                g0 = di + part * c.G * N + (h // r) * N
                idx += list(range(g0, g0 + N))
        idx += list(range(c.conv_ch, c.in_proj))
        idx = torch.tensor(idx, device=dev)
        m2.in_proj.weight.copy_(m.in_proj.weight[idx])
        m2.conv1d.weight.copy_(m.conv1d.weight[idx[:c2.conv_ch]])
        m2.conv1d.bias.copy_(m.conv1d.bias[idx[:c2.conv_ch]])
        for n_ in ("z_bias", "D"):
            getattr(m2, n_).copy_(getattr(m, n_))
        m2.out_proj.weight.copy_(m.out_proj.weight)
        check("grouped_bc_heads", rel_err(m(u), m2(u)), tol)
        # Attention init with GQA (2 KV heads for 4 query heads), with biases.
        c3 = Cfg(vocab=50, d_model=24, n_layer=1, inner=40, eps=1e-5, tied=True, mlp_bias=False,
                 n_v_heads=4, n_qk_heads=4, d_state=6, chunk=16)
        m3, att = Mixer(c3).to(dev, dtype), FakeAttn(24, 4, 2, 6, True).to(dev, dtype)
        for p in att.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float64).to(p))
        attention_init(m3, att, 4, 2, 6)
        x, B, C, _, _ = m3.parts(u)
        rep = lambda t: t.reshape(*t.shape[:2], 2, 6).repeat_interleave(2, dim=2)
        check("attention_init_x_is_v", rel_err(x, rep(att.v_proj(u))), tol)
        check("attention_init_B_is_k", rel_err(B, rep(att.k_proj(u))), tol)
        check("attention_init_C_is_q", rel_err(C, att.q_proj(u).reshape(2, 50, 4, 6)), tol)
        z_rows = m3.in_proj.weight[c3.conv_ch:c3.conv_ch + c3.d_inner]
        check("open_gate_z_rows_zero", z_rows.abs().max().item(), 0.0)
        check("attention_init_out_proj", rel_err(m3.out_proj.weight, att.o_proj.weight), 0.0)
        # The whole student, scratch-initialised, in its two training forms.
        st = Llamba(c).to(dev, dtype)
        scratch_init(st)
        for m in st.mixers():  # larger mixers, so that their error shows in the logits
            m.in_proj.weight.mul_(15)
            m.out_proj.weight.mul_(15)
        ids = torch.randint(0, c.vocab, (2, 40), generator=g).to(dev)
        check("student_ssd_vs_matrix", rel_err(st(ids, "ssd"), st(ids, "matrix")), tol)


# ---------------------------------------------------------------- data

def load_ids(path, tdir, eos):
    """A token stream: *.u16.gz (llama_tokens.js), *.ids (one document per line
    of space-separated ids, as `pipeline tokenize --tokenizer T FILE` writes;
    EOS appended to each) or *.txt (the tokenizers package)."""
    if path.endswith(".u16.gz"):
        raw = gzip.decompress(open(path, "rb").read())
        meta = os.path.join(os.path.dirname(path), "tokens.json")
        if os.path.exists(meta):
            for v in json.load(open(meta)).values():
                if isinstance(v, dict) and v.get("file") == os.path.basename(path) and hashlib.sha256(raw).hexdigest() != v["sha256"]:
                    die(f"{path}: SHA-256 differs from {meta}")
        return torch.from_numpy(np.frombuffer(raw, dtype="<u2").astype(np.int64))
    if path.endswith(".ids"):
        ids = []
        for n, line in enumerate(open(path, encoding="ascii"), 1):
            try:
                ids.extend(int(t) for t in line.split())
            except ValueError:
                die(f"{path}:{n}: not a line of space-separated token ids")
            ids.append(eos)
        return torch.tensor(ids, dtype=torch.long)
    if path.endswith(".txt"):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            die(f"{path}: the tokenizers package is missing; make an id file with "
                f"`pipeline tokenize --tokenizer {tdir}/tokenizer.json {path} > X.ids` and pass X.ids")
        tok = Tokenizer.from_file(os.path.join(tdir, "tokenizer.json"))
        ids = []
        for enc in tok.encode_batch(open(path, encoding="utf-8").read().split("\n\n"), add_special_tokens=True):
            ids.extend(enc.ids); ids.append(eos)
        return torch.tensor(ids, dtype=torch.long)
    die(f"{path}: want an id stream (*.u16.gz from llama_tokens.js, *.ids from pipeline tokenize) or a text file (*.txt)")


# ---------------------------------------------------------------- settings

def settings(config=None):
    """The recipe's settings: the peer's own defaults, or those of a mohawk
    config (training.seq_len, tokens_per_update, optimizer, schedule, eval,
    seed, student.chunk_size), read as pipeline.trainOptions reads them."""
    s = dict(seq=256, tokens_per_update=256 * 16, lr_align=1e-3, lr_distill=5e-4, lr_scratch=1e-3, beta1=0.9, beta2=0.95,
             eps=1e-8, wd=0.1, clip=1.0, kind="wsd", warmup=0.1, decay=0.1, min_ratio=0.0, eval_windows=100, eval_seq=256,
             seed=0, chunk=128, source="defaults")
    if config:
        import yaml
        y = yaml.safe_load(open(config))
        t, o, sch, ev = y.get("training", {}), y.get("training", {}).get("optimizer", {}), \
            y.get("training", {}).get("schedule", {}), y.get("eval", {})
        s.update(seq=t.get("seq_len", s["seq"]), tokens_per_update=t.get("tokens_per_update", 0), beta1=o.get("beta1", 0.9),
                 beta2=o.get("beta2", 0.95), eps=o.get("eps", 1e-8), wd=o.get("weight_decay", 0.1), clip=o.get("clip_norm", 1.0),
                 kind=sch.get("kind", "wsd"), warmup=sch.get("warmup", 0.1), decay=sch.get("decay", 0.1),
                 min_ratio=sch.get("min_lr_ratio", 0.0), eval_windows=ev.get("windows", 100), eval_seq=ev.get("seq_len", 256),
                 seed=y.get("seed", 0), chunk=y.get("student", {}).get("chunk_size", 128), source=config)
        mb = t.get("micro_batch", 1)
        s["tokens_per_update"] = max(s["tokens_per_update"], s["seq"] * mb)  # as trainOptions: at least one micro-batch
        if s["kind"] != "wsd":
            die(f"{config}: training.schedule.kind {s['kind']!r}; the peer implements wsd only")
    if s["tokens_per_update"] % s["seq"]:
        die(f"tokens_per_update {s['tokens_per_update']} is not a multiple of seq_len {s['seq']}")
    s["bsz"] = s["tokens_per_update"] // s["seq"]
    return argparse.Namespace(**s)


def lr_factor(step, n, warmup, decay, min_ratio):
    """stages.Schedule.Factor for kind wsd: linear warm-up reaching 1 at the
    last warm-up step, flat, then linear decay to min_ratio over the last
    steps (1 -> 1/d of the way)."""
    n = max(1, n)
    w = int(round_half_away(warmup * n))
    if warmup > 0:
        w = max(1, w)
    if step < w:
        return (step + 1) / w
    d = int(round_half_away(decay * n))
    if decay > 0:
        d = max(1, d)
    if d > 0 and step >= n - d:
        return min_ratio + (1 - min_ratio) * (n - step) / d
    return 1.0


def round_half_away(x):
    """Go's math.Round (halves away from zero), not Python's banker's round."""
    return math.floor(x + 0.5) if x >= 0 else -math.floor(-x + 0.5)


def no_decay(name):
    """phimamba.NoDecay, which Llamba students use: biases, z_bias, norms, D."""
    return name.endswith(".bias") or name.endswith("z_bias") or "layernorm" in name or name.endswith(".D")


# ---------------------------------------------------------------- MOHAWK

class Sampler:
    """data.Sampler's scheme with torch's generator: epoch e draws a shift in
    [0, seq) and a permutation of the W = len/seq - 1 windows of seq+1 tokens
    starting at shift + k*seq; batch j of the epoch is permutation positions
    [j*bsz, (j+1)*bsz). (mohawk draws from Go's PCG, so the windows differ.)"""

    def __init__(self, ids, seq, bsz, seed):
        self.ids, self.seq, self.bsz, self.seed = ids, seq, bsz, seed
        self.W = len(ids) // seq - 1
        if self.W < bsz:
            die(f"training stream of {len(ids)} tokens gives {self.W} windows of {seq}+1, fewer than one batch of {bsz}")
        self.per_epoch = self.W // bsz
        self.epoch = -1

    def batch(self, index):
        e, j = divmod(index, self.per_epoch)
        if e != self.epoch:
            g = torch.Generator().manual_seed(self.seed * 1000003 + e)
            self.epoch = e
            self.shift = int(torch.randint(0, self.seq, (1,), generator=g))
            self.order = torch.randperm(self.W, generator=g)
        starts = self.shift + self.order[j * self.bsz:(j + 1) * self.bsz] * self.seq
        return torch.stack([self.ids[s:s + self.seq + 1] for s in starts.tolist()])


class Run:
    def __init__(self, teacher, tr, va, dev, qk_heads, init, S):
        self.teacher, self.va, self.dev, self.init, self.S = teacher, va, dev, init, S
        self.tc = teacher.config
        self.c = for_teacher(self.tc, qk_heads, S.chunk)
        self.L, self.V = self.c.n_layer, self.c.vocab
        self.sampler = Sampler(tr, S.seq, S.bsz, S.seed)
        self.attn_out = {}
        for i, layer in enumerate(teacher.model.layers):
            layer.self_attn.register_forward_hook(lambda m, a, o, i=i: self.attn_out.__setitem__(i, o[0]))

    def student(self, recipe):
        st = Llamba(self.c).to(self.dev)
        if recipe == "scratch":
            scratch_init(st)
            return st
        transfer(st, self.teacher)
        if self.init == "attention":
            tc = self.tc
            hd = getattr(tc, "head_dim", None) or tc.hidden_size // tc.num_attention_heads
            for m, tl in zip(st.mixers(), self.teacher.model.layers):
                attention_init(m, tl.self_attn, tc.num_attention_heads, tc.num_key_value_heads, hd)
        return st

    @torch.no_grad()
    def evaluate(self, model):
        """Perplexity over the first eval_windows windows of eval_seq+1 tokens
        of VAL, window k starting at k*eval_seq (data.EvalWindows)."""
        was = model.training
        model.eval()
        T, tot, n = self.S.eval_seq, 0.0, 0
        for k in range(self.S.eval_windows):
            x = self.va[k * T:k * T + T + 1].unsqueeze(0).to(self.dev)
            out = model(x[:, :-1])
            lg = out.logits if hasattr(out, "logits") else out
            tot += F.cross_entropy(lg[0].float(), x[0, 1:], reduction="sum").item(); n += T
        model.train(was)
        return math.exp(tot / n)

    def normed(self, o, i):
        return self.teacher.model.layers[i].input_layernorm(o.hidden_states[i])

    # Each loss gets a batch of windows of seq+1 tokens; the models read the
    # first seq (mohawk's inputsAndLabels), the LM loss predicts the last seq.
    def loss1(self, st, w):
        ids = w[:, :-1]
        with torch.no_grad():
            o = self.teacher(ids, output_hidden_states=True, output_attentions=True)
        tot = 0
        for i, m in enumerate(st.mixers()):
            tot = tot + torch.linalg.matrix_norm(m.matrix(self.normed(o, i)) - o.attentions[i], ord="fro").mean()
        return tot / self.L

    def loss2(self, st, w):
        ids = w[:, :-1]
        with torch.no_grad():
            o = self.teacher(ids, output_hidden_states=True)
        tot = 0
        for i, m in enumerate(st.mixers()):
            tot = tot + (m(self.normed(o, i)) - self.attn_out[i]).norm(dim=-1).mean()
        return tot / self.L

    def loss3(self, st, w):
        ids = w[:, :-1]
        with torch.no_grad():
            tl = self.teacher(ids).logits
        return -(F.softmax(tl, -1) * F.log_softmax(st(ids), -1)).sum(-1).mean()

    def loss_lm(self, st, w):
        return F.cross_entropy(st(w[:, :-1]).reshape(-1, self.V), w[:, 1:].reshape(-1))

    def stage(self, st, name, tokens, lr, loss_fn, named, batch0):
        """One stage of tokens // tokens_per_update optimizer steps (trainOptions);
        batches batch0, batch0+1, ... of the sampler. Returns the result and
        the next batch index."""
        S = self.S
        steps = tokens // S.tokens_per_update
        if steps < 1:
            die(f"stage {name}: {tokens} tokens are less than one update of {S.tokens_per_update}")
        params = [p for _, p in named]
        groups = [{"params": [p for n, p in named if not no_decay(n)], "weight_decay": S.wd},
                  {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}]
        opt = torch.optim.AdamW([g for g in groups if g["params"]], lr=lr, betas=(S.beta1, S.beta2), eps=S.eps)
        t0, first, last = time.time(), None, None
        for s in range(steps):
            for g in opt.param_groups:
                g["lr"] = lr * lr_factor(s, steps, S.warmup, S.decay, S.min_ratio)
            loss = loss_fn(st, self.sampler.batch(batch0 + s).to(self.dev))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if S.clip > 0:
                torch.nn.utils.clip_grad_norm_(params, S.clip)
            opt.step()
            if s == 0 or s == steps - 1 or s % 100 == 0:
                v = loss.item()
                if not math.isfinite(v):
                    die(f"stage {name}: loss {v} at step {s}")
                first = v if first is None else first
                last = v
        if self.dev == "cuda":
            torch.cuda.synchronize()
        r = {"stage": name, "steps": steps, "tokens": steps * S.tokens_per_update, "lr": lr, "loss_first": first,
             "loss_last": last, "s": round(time.time() - t0, 1), "val_ppl": round(self.evaluate(st), 3)}
        print(json.dumps(r), flush=True)
        return r, batch0 + steps

    def recipe(self, recipe, budget, teacher_ppl, save):
        S = self.S
        torch.manual_seed(S.seed)
        t0 = time.time()
        st = self.student(recipe)
        res = {"recipe": recipe, "init": "scratch" if recipe == "scratch" else self.init, "budget": budget,
               "teacher_val_ppl": teacher_ppl}
        mixer_named = [(f"mixer.{n}", p) for m in st.mixers() for n, p in m.named_parameters()]
        all_named = list(st.named_parameters())
        # pipeline.Recipes: Stage 1 10%, Stage 2 20% (30% in s23), Stage 3 70%
        # (100% in s3), each int(fraction * budget) tokens.
        split = {"s123": [("s1", 0.1), ("s2", 0.2), ("s3", 0.7)], "s23": [("s2", 0.3), ("s3", 0.7)],
                 "s3": [("s3", 1.0)], "scratch": [("lm", 1.0)]}[recipe]
        how = {"s1": (S.lr_align, self.loss1, mixer_named), "s2": (S.lr_align, self.loss2, mixer_named),
               "s3": (S.lr_distill, self.loss3, all_named), "lm": (S.lr_scratch, self.loss_lm, all_named)}
        if recipe != "scratch":
            res["init_val_ppl"] = round(self.evaluate(st), 3)
        stages, b = [], 0
        for name, frac in split:
            lr, fn, named = how[name]
            r, b = self.stage(st, name, int(frac * budget), lr, fn, named, b)
            stages.append(r)
        res["stages"] = stages
        res["student_val_ppl"] = stages[-1]["val_ppl"]
        res["ratio"] = round(res["student_val_ppl"] / teacher_ppl, 4)
        res["s"] = round(time.time() - t0, 1)
        res["params"] = sum(p.numel() for p in st.parameters())
        res["student_config"] = self.c.to_json()
        if save:
            from safetensors.torch import save_file
            d = os.path.join(save, recipe)
            os.makedirs(d, exist_ok=True)
            save_file({k: v.detach().float().cpu().contiguous() for k, v in st.state_dict().items()},
                      os.path.join(d, "model.safetensors"))
            with open(os.path.join(d, "config.json"), "w") as f:
                json.dump(self.c.to_json(), f, indent=2)
            res["saved"] = d
        print(json.dumps(res), flush=True)
        return res

    @torch.no_grad()
    def check_zero_mixers(self, ids):
        """The transferred student with out_proj = 0 is the teacher with every
        attention output zeroed (norms, MLPs, final norm, head copied right)."""
        st = self.student("s3")
        for m in st.mixers():
            m.out_proj.weight.zero_()
        hooks = [l.self_attn.register_forward_hook(lambda m, a, o: (torch.zeros_like(o[0]),) + tuple(o[1:]))
                 for l in self.teacher.model.layers]
        try:
            want = self.teacher(ids).logits
        finally:
            for h in hooks:
                h.remove()
        check("zero_mixers_vs_teacher_without_attention", rel_err(st(ids), want), 1e-4)
        # With attention init, every layer's C is the teacher's q on the teacher's normed input.
        if self.init == "attention":
            st = self.student("s3")
            o = self.teacher(ids, output_hidden_states=True)
            for i, m in enumerate(st.mixers()):
                x, B, C, _, _ = m.parts(self.normed(o, i))
                attn = self.teacher.model.layers[i].self_attn
                q = attn.q_proj(self.normed(o, i)).reshape(x.shape)
                check(f"attention_init_layer{i}_C_is_q", rel_err(C, q), 1e-5)


def load_teacher(path, impl, dev):
    """(teacher, the implementation used): transformers' LlamaForCausalLM, or
    plain_llama's when impl is plain or transformers is not installed."""
    if impl in ("auto", "transformers"):
        try:
            from transformers import AutoModelForCausalLM
        except ImportError:
            if impl == "transformers":
                die("--teacher-impl transformers: the transformers package is not installed")
            impl = "plain"
        else:
            impl = "transformers"
            m = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32, attn_implementation="eager")
    if impl == "plain":
        m = plain_llama.load(path)
    m = m.to(dev).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m, impl


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("teacher", nargs="?")
    ap.add_argument("train", nargs="?")
    ap.add_argument("val", nargs="?")
    ap.add_argument("recipe", nargs="?", help="s123 | s23 | s3 | scratch | a comma list | all")
    ap.add_argument("budget", nargs="?", type=int, default=3_300_000)
    ap.add_argument("--config", help="a mohawk config (YAML) whose training, eval, seed and chunk settings the recipe takes")
    ap.add_argument("--teacher-impl", choices=["auto", "transformers", "plain"], default="auto",
                    help="transformers' model, or plain_llama's (auto: plain when transformers is missing)")
    ap.add_argument("--lr-align", type=float, default=1e-3, help="Stages 1-2 (pipeline.PeerLRs)")
    ap.add_argument("--lr-distill", type=float, default=5e-4, help="Stage 3")
    ap.add_argument("--lr-scratch", type=float, default=1e-3, help="from scratch")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: torch's)")
    ap.add_argument("--init", choices=["mohawk", "attention"], default="mohawk")
    ap.add_argument("--qk-heads", type=int, default=0, help="B/C heads (default: the teacher's heads)")
    ap.add_argument("--save", help="write each recipe's student (model.safetensors, config.json) under this folder")
    ap.add_argument("--selftest", action="store_true",
                    help="run the teacher-free checks (CPU, float64) and the plain teacher against transformers' references, and exit")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    if a.selftest:
        selftest_pieces("cpu", torch.float64, 1e-10)
        here = os.path.dirname(os.path.abspath(__file__))
        plain_llama.selftest(os.path.join(here, "..", "..", "graphs", "models", "llama", "testdata"))
        return
    if not (a.teacher and a.train and a.val and a.recipe):
        ap.error("TEACHER_DIR TRAIN VAL RECIPE are needed (or --selftest)")
    recipes = ["s123", "s23", "s3", "scratch"] if a.recipe == "all" else a.recipe.split(",")
    for r in recipes:
        if r not in ("s123", "s23", "s3", "scratch"):
            ap.error(f"unknown recipe {r!r}; want s123, s23, s3, scratch, a comma list or all")
    if a.qk_heads and a.init == "attention":
        ap.error("--init attention needs n_qk_heads = the teacher's heads; leave --qk-heads out")
    S = settings(a.config)
    S.lr_align, S.lr_distill, S.lr_scratch = a.lr_align, a.lr_distill, a.lr_scratch

    dev = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    selftest_pieces(dev, torch.float32, 1e-4)
    teacher, impl = load_teacher(a.teacher, a.teacher_impl, dev)
    eos = teacher.config.eos_token_id
    eos = eos[0] if isinstance(eos, list) else eos
    if eos is None:
        die(f"{a.teacher}/config.json has no eos_token_id, which ends every document of the streams")
    tr, va = load_ids(a.train, a.teacher, eos), load_ids(a.val, a.teacher, eos)
    if max(tr.max().item(), va.max().item()) >= teacher.config.vocab_size:
        die(f"ids beyond the teacher's vocabulary {teacher.config.vocab_size}")
    if len(va) < S.eval_seq * S.eval_windows + 1:
        die(f"VAL has {len(va)} tokens, fewer than {S.eval_windows} windows of {S.eval_seq}+1")
    run = Run(teacher, tr, va, dev, a.qk_heads or None, a.init, S)
    run.check_zero_mixers(run.sampler.batch(0)[:2, :64].to(dev))
    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    teacher_ppl = round(run.evaluate(teacher), 3)
    print(json.dumps({"teacher": a.teacher, "teacher_impl": impl, "train_tokens": len(tr), "val_tokens": len(va),
                      "teacher_val_ppl": teacher_ppl, "settings": vars(S), "student": run.c.to_json(), "init": a.init,
                      "device": torch.cuda.get_device_name(0) if dev == "cuda" else f"cpu, {torch.get_num_threads()} threads",
                      "torch": torch.__version__}), flush=True)
    summary = []
    for r in recipes:
        res = run.recipe(r, a.budget, teacher_ppl, a.save)
        summary.append({"recipe": r, "student_val_ppl": res["student_val_ppl"], "ratio": res["ratio"], "s": res["s"]})
    print(json.dumps({"summary": summary, "teacher_val_ppl": teacher_ppl, "budget": a.budget, "init": a.init,
                      "eval": f"{S.eval_windows} windows of {S.eval_seq}"}), flush=True)


if __name__ == "__main__":
    main()
