# PyTorch reference for one MOHAWK Stage 1 (matrix orientation) or Stage 2
# (hidden-state alignment) optimizer step at Phi-1.5 shapes, the companion of
# ../shared/tools/torch-reference/perf_torch.py (Stage 3). The student mixers
# are the Mixer class of ../shared/tools/torch-reference/mohawk_torch.py
# (plain-torch chunked SSD), loaded from there at run time; the teacher is
# transformers' PhiForCausalLM with random weights.
#
# Usage: python3 perf_stages_torch.py STAGE MODE MICRO_BATCH SEQ [LAYERS]
#   STAGE 1 or 2; MODE tf32 or bf16 (autocast, as perf_torch.py);
#   LAYERS (default 24) shrinks the model for a rehearsal.
# Prints one JSON line. Each layer's loss is backpropagated as soon as it is
# computed (the mixers are independent, so the gradients equal those of the
# summed loss) to keep Stage 1's [B, H, T, T] matrices from piling up.
import json, os, sys, time
import torch, torch.nn.functional as F
from transformers import PhiConfig, PhiForCausalLM

stage, mode, mb, T = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
layers = int(sys.argv[5]) if len(sys.argv) > 5 else 24
assert stage in (1, 2) and mode in ("tf32", "bf16")
torch.backends.cuda.matmul.allow_tf32 = True
dev = "cuda"
D, H, P, N, V = 2048, 32, 64, 64, 51200
cfg = PhiConfig(vocab_size=V, hidden_size=D, intermediate_size=8192, num_hidden_layers=layers, num_attention_heads=H,
                num_key_value_heads=H, partial_rotary_factor=0.5, hidden_act="gelu_new", max_position_embeddings=2048,
                resid_pdrop=0, embd_pdrop=0, attention_dropout=0)
# Stage 1 fits the attention probabilities, which only eager attention returns.
cfg._attn_implementation = "eager" if stage == 1 else "sdpa"
teacher = PhiForCausalLM(cfg).to(dev, torch.bfloat16 if mode == "bf16" else torch.float32).eval()
for p in teacher.parameters():
    p.requires_grad_(False)

here = os.path.dirname(os.path.abspath(__file__))
ref = os.environ.get("TORCH_REFERENCE", os.path.join(here, "..", "..", "..", "shared", "tools", "torch-reference"))
src = open(os.path.join(ref, "mohawk_torch.py")).read()
g = {"torch": torch, "nn": torch.nn, "F": F, "teacher": teacher, "cfg": cfg, "D": D, "L": layers, "H": H, "V": V, "P": P, "N": N}
exec(src[src.index("def segsum"):src.index("class Block")], g)
mixers = torch.nn.ModuleList([g["Mixer"]() for _ in range(layers)]).to(dev)
params = list(mixers.parameters())
opt = torch.optim.AdamW(params, lr=1e-4, betas=(0.9, 0.95), weight_decay=0.1, fused=True)

attn_out = {}
for i in range(layers):
    teacher.model.layers[i].self_attn.register_forward_hook(lambda m, a, o, i=i: attn_out.__setitem__(i, o[0]))
autocast = lambda: torch.autocast("cuda", dtype=torch.bfloat16, enabled=(mode == "bf16"))


def step():
    ids = torch.randint(0, V, (mb, T), device=dev)
    with torch.no_grad(), autocast():
        o = teacher(ids, output_hidden_states=True, output_attentions=(stage == 1))
        us = [teacher.model.layers[i].input_layernorm(o.hidden_states[i]) for i in range(layers)]
    opt.zero_grad(set_to_none=True)
    for i, m in enumerate(mixers):
        with autocast():
            if stage == 1:
                loss = torch.linalg.matrix_norm(m.matrix(us[i]).float() - o.attentions[i].float(), ord="fro").mean() / layers
            else:
                loss = (m(us[i]).float() - attn_out[i].float()).norm(dim=-1).mean() / layers
        loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    opt.step()


for _ in range(2):
    step()
torch.cuda.synchronize()
n = 5
t0 = time.time()
for _ in range(n):
    step()
torch.cuda.synchronize()
dt = (time.time() - t0) / n
print(json.dumps({"stage": stage, "mode": mode, "micro_batch": mb, "seq": T, "layers": layers, "step_s": round(dt, 4),
                  "tokens_per_s": round(mb * T / dt), "mixer_params": sum(p.numel() for p in params),
                  "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 1)}), flush=True)
