# PyTorch/transformers peer for `pipeline bench-forward`: the teacher's
# logits forward (PhiForCausalLM, fp32; TF32 matmuls when asked; SDPA attention
# unless ATTN names another implementation, e.g. eager) on random ids, timed
# the same way (median of N runs after a warm-up).
# Usage: python3 forward_torch.py MODEL_DIR|phi-1.5 BATCH SEQ ITERS [tf32|fp32|bf16] [ATTN]
import json, sys, time, torch
from transformers import PhiConfig, PhiForCausalLM

model, batch, seq, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
mode = sys.argv[5] if len(sys.argv) > 5 else "fp32"
attn = sys.argv[6] if len(sys.argv) > 6 else "sdpa"
tf32 = mode == "tf32"
dtype = torch.bfloat16 if mode == "bf16" else torch.float32
torch.backends.cuda.matmul.allow_tf32 = tf32
torch.backends.cudnn.allow_tf32 = tf32
dev = "cuda"
if model == "phi-1.5":
    cfg = PhiConfig(vocab_size=51200, hidden_size=2048, intermediate_size=8192, num_hidden_layers=24,
                    num_attention_heads=32, num_key_value_heads=32, partial_rotary_factor=0.5,
                    hidden_act="gelu_new", max_position_embeddings=2048)
    net = PhiForCausalLM(cfg)
else:
    net = PhiForCausalLM.from_pretrained(model, dtype=torch.float32)
net = net.to(dev, dtype).eval()
net.config._attn_implementation = attn
vocab = net.config.vocab_size
times = []
with torch.no_grad():
    for i in range(iters + 1):
        ids = torch.randint(0, vocab, (batch, seq), device=dev)
        torch.cuda.synchronize(); t0 = time.time()
        net(ids).logits
        torch.cuda.synchronize()
        if i > 0:
            times.append(time.time() - t0)
times.sort()
ms = times[len(times) // 2] * 1000
print(json.dumps({"peer": "transformers", "model": model, "batch": batch, "seq": seq, "mode": mode, "attn": attn,
                  "ms_per_iter": round(ms, 3), "tokens_per_s": round(batch * seq / (ms / 1000)),
                  "peak_mem_gb": round(torch.cuda.max_memory_allocated() / 2**30, 2)}), flush=True)
