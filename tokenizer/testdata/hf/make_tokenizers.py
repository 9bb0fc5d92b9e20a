"""Writes the small hand-built tokenizer.json files of this directory.

Usage (from the repository root):
    python3 tokenizer/testdata/hf/make_tokenizers.py ../shared/data/en/train.txt

The vocabularies are not trained models: a few hundred BPE merges of the most
frequent adjacent pairs in the first megabyte of train.txt, enough to make the
merge order matter. The files copy the structure of real Llama-3, Qwen2,
Llama-2 (legacy SentencePiece conversion) and Metaspace-style tokenizer.json
files; make_refs.js then asks Hugging Face tokenizers for reference ids.
"""
import collections, json, os, re, sys

text = open(sys.argv[1], encoding="utf-8").read()[:1_000_000]


def byte_chars():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs, n = {}, 0
    for b in range(256):
        if b in bs:
            cs[b] = chr(b)
        else:
            cs[b] = chr(256 + n)
            n += 1
    return cs


def train(words, alphabet, n_merges):
    """Greedy BPE: merge the most frequent adjacent pair n_merges times."""
    words = {tuple(w): c for w, c in words.items()}
    vocab = list(alphabet)
    known = set(vocab)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for w, c in words.items():
            for a, b in zip(w, w[1:]):
                pairs[a, b] += c
        if not pairs:
            break
        (a, b), _ = max(pairs.items(), key=lambda kv: (kv[1], kv[0]))
        merges.append([a, b])
        if a + b not in known:
            known.add(a + b)
            vocab.append(a + b)
        new = {}
        for w, c in words.items():
            out, i = [], 0
            while i < len(w):
                if i + 1 < len(w) and w[i] == a and w[i + 1] == b:
                    out.append(a + b)
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new[tuple(out)] = new.get(tuple(out), 0) + c
        words = new
    return vocab, merges


def added(tokens, first_id):
    out = []
    for i, (content, special, extra) in enumerate(tokens):
        t = {"id": first_id + i, "content": content, "single_word": False, "lstrip": False,
             "rstrip": False, "normalized": not special, "special": special}
        t.update(extra)
        out.append(t)
    return out


def model(vocab, merges, **kw):
    m = {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
         "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False}
    m.update(kw)
    m["vocab"] = {t: i for i, t in enumerate(vocab)}
    m["merges"] = merges
    return m


def write(name, doc):
    with open(os.path.join(os.path.dirname(os.path.abspath(__file__)), name), "w", encoding="utf-8") as f:
        json.dump(doc, f, ensure_ascii=False, indent=1)
        f.write("\n")


# Byte-level BPE (Llama-3 and Qwen2 share the vocabulary).
bc = byte_chars()
words = collections.Counter(
    "".join(bc[b] for b in w.encode("utf-8"))
    for w in re.findall(r"'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]+|[0-9]{1,3}| ?[^\sA-Za-z0-9]+[\r\n]*|\s+", text))
bvocab, bmerges = train(words, [bc[b] for b in range(256)], 700)

LLAMA3 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
QWEN2 = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"


def split_bytelevel(pattern):
    return {"type": "Sequence", "pretokenizers": [
        {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}


n = len(bvocab)
write("llama3.json", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": added([
        ("<|begin_of_text|>", True, {}), ("<|end_of_text|>", True, {}), ("<|eot_id|>", True, {}),
        ("<|lstrip|>", True, {"lstrip": True}), ("[EXTRA]", False, {"rstrip": True})], n),
    "normalizer": None,
    "pre_tokenizer": split_bytelevel(LLAMA3),
    "post_processor": {"type": "Sequence", "processors": [
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
        {"type": "TemplateProcessing",
         "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
         "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                  {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
         "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [n], "tokens": ["<|begin_of_text|>"]}}}]},
    "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
    "model": model(bvocab, bmerges, ignore_merges=True),
})
write("qwen2.json", {
    "version": "1.0", "truncation": None, "padding": None,
    "added_tokens": added([
        ("<|endoftext|>", True, {}), ("<|im_start|>", True, {}), ("<|im_end|>", True, {}),
        ("café", False, {})], n),
    "normalizer": {"type": "NFC"},
    "pre_tokenizer": split_bytelevel(QWEN2),
    "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "decoder": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False},
    "model": model(bvocab, bmerges),
})

# SentencePiece-style BPE on characters, with byte fallback. <0xF0> is left
# out so that 4-byte characters (emoji) fall to the fused unknown token.
sp_words = collections.Counter(re.findall("▁[^▁]*", "▁" + text.replace(" ", "▁")))
chars = collections.Counter(c for w, k in sp_words.items() for c in w for _ in range(k))
alphabet = sorted(c for c, k in chars.items() if k >= 20)
byte_tokens = ["<0x%02X>" % b for b in range(256) if b != 0xF0]
svocab, smerges = train({w: k for w, k in sp_words.items() if all(c in alphabet for c in w)},
                        ["<unk>", "<s>", "</s>"] + byte_tokens + alphabet, 700)
sp_added = [
    {"id": 0, "content": "<unk>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    {"id": 1, "content": "<s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
    {"id": 2, "content": "</s>", "single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True},
] + added([("[INST]", False, {"lstrip": True, "rstrip": True, "normalized": False}), ("<extra_id>", False, {})], len(svocab))
sp_post = {"type": "TemplateProcessing",
           "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
           "pair": [{"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                    {"SpecialToken": {"id": "<s>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
           "special_tokens": {"<s>": {"id": "<s>", "ids": [1], "tokens": ["<s>"]}}}
sp_decoder = {"type": "Sequence", "decoders": [
    {"type": "Replace", "pattern": {"String": "▁"}, "content": " "},
    {"type": "ByteFallback"}, {"type": "Fuse"}, {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
sp_model = model(svocab, smerges, unk_token="<unk>", fuse_unk=True, byte_fallback=True)
write("llama2.json", {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": sp_added,
    "normalizer": {"type": "Sequence", "normalizers": [
        {"type": "Prepend", "prepend": "▁"}, {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]},
    "pre_tokenizer": None, "post_processor": sp_post, "decoder": sp_decoder, "model": sp_model,
})
write("metaspace.json", {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": sp_added,
    "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": False},
    "post_processor": sp_post, "decoder": sp_decoder, "model": sp_model,
})
# The older Metaspace form: add_prefix_space instead of prepend_scheme, and
# split left to its default (true).
write("metaspace_split.json", {
    "version": "1.0", "truncation": None, "padding": None, "added_tokens": sp_added,
    "normalizer": None,
    "pre_tokenizer": {"type": "Metaspace", "replacement": "▁", "add_prefix_space": True},
    "post_processor": sp_post, "decoder": sp_decoder, "model": sp_model,
})
