// Builds the Llama-3-style tokenizer.json of llama-tiny-en and tokenizes
// train.txt and val.txt with it, so that make_llama_teacher.py and
// mohawk_llama_torch.py need no tokenizer on the GPU machine.
//
//   (mkdir -p /tmp/tokref && cd /tmp/tokref && npm install @anush008/tokenizers@0.6.0)
//   NODE_PATH=/tmp/tokref/node_modules node bench/torch/llama_tokens.js \
//       ../shared/reference/phi-tiny-en/tokenizer.json ../shared/data/en bench/torch/llama-tiny-en
//
// tokenizer.json: phi-tiny-en's byte-level BPE (its 256 byte tokens and its
// merges but the last, ids shifted down by one) with the structure of a real
// Llama-3 file: Split on the Llama-3 pattern then ByteLevel without its regex,
// ignore_merges, a ByteLevel + TemplateProcessing post-processor that puts
// <|begin_of_text|> first, and <|begin_of_text|> = 8190, <|end_of_text|> = 8191
// (vocabulary 8192, as phi-tiny-en's).
//
// {train,val}.u16.gz: the perplexity protocol's stream (../shared/README.md):
// each file split into documents on "\n\n", each document encoded by Hugging
// Face tokenizers 0.22.2 (these Node bindings) with add_special_tokens=true,
// <|end_of_text|> appended after each; little-endian uint16, gzip.
// tokens.json: counts, ids, and the SHA-256 of each uncompressed stream.
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const crypto = require('crypto');
const { Tokenizer } = require('@anush008/tokenizers');

const LLAMA3 = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

function fail(msg) {
  console.error('llama_tokens.js: ' + msg);
  process.exit(1);
}

function buildTokenizer(phiPath) {
  const phi = JSON.parse(fs.readFileSync(phiPath, 'utf8'));
  const m = phi.model;
  if (m.type !== 'BPE' || !Array.isArray(m.merges)) fail(`${phiPath}: want a BPE model with list merges`);
  const byId = [];
  for (const [t, i] of Object.entries(m.vocab)) byId[i] = t;
  if (byId[0] !== '<|endoftext|>' || byId.length !== 8192) fail(`${phiPath}: want <|endoftext|> at id 0 and 8192 ids (phi-tiny-en)`);
  // Merge k made id 257+k; dropping the last merge drops the last id.
  m.merges.forEach((mg, k) => {
    if (m.vocab[mg[0] + mg[1]] !== 257 + k) fail(`${phiPath}: merge ${k} does not make id ${257 + k}`);
  });
  const merges = m.merges.slice(0, -1);
  const vocab = {};
  for (let i = 1; i < byId.length - 1; i++) vocab[byId[i]] = i - 1;
  const n = byId.length - 2; // 8190
  const special = (id, content) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  return {
    version: '1.0', truncation: null, padding: null,
    added_tokens: [special(n, '<|begin_of_text|>'), special(n + 1, '<|end_of_text|>')],
    normalizer: null,
    pre_tokenizer: { type: 'Sequence', pretokenizers: [
      { type: 'Split', pattern: { Regex: LLAMA3 }, behavior: 'Isolated', invert: false },
      { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false }] },
    post_processor: { type: 'Sequence', processors: [
      { type: 'ByteLevel', add_prefix_space: true, trim_offsets: false, use_regex: true },
      { type: 'TemplateProcessing',
        single: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
        pair: [{ SpecialToken: { id: '<|begin_of_text|>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } },
               { SpecialToken: { id: '<|begin_of_text|>', type_id: 1 } }, { Sequence: { id: 'B', type_id: 1 } }],
        special_tokens: { '<|begin_of_text|>': { id: '<|begin_of_text|>', ids: [n], tokens: ['<|begin_of_text|>'] } } }] },
    decoder: { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true },
    model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
             fuse_unk: false, byte_fallback: false, ignore_merges: true, vocab, merges },
  };
}

async function stream(tok, file, bos, eos) {
  const docs = fs.readFileSync(file, 'utf8').split('\n\n');
  const ids = [];
  for (let i = 0; i < docs.length; i += 256) {
    const encs = await tok.encodeBatch(docs.slice(i, i + 256), { addSpecialTokens: true });
    for (const e of encs) {
      const d = e.getIds();
      if (d[0] !== bos) fail(`${file}: document ${ids.length} does not start with <|begin_of_text|>`);
      for (const id of d) ids.push(id);
      ids.push(eos);
    }
  }
  const u = new Uint16Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    if (!(ids[i] >= 0 && ids[i] < 8192)) fail(`${file}: id ${ids[i]} out of range`);
    u[i] = ids[i];
  }
  const buf = Buffer.from(u.buffer); // little-endian on x86
  return { docs: docs.length, tokens: ids.length, buf };
}

async function main() {
  if (process.argv.length !== 5) fail('usage: node llama_tokens.js PHI_TOKENIZER_JSON DATA_DIR(with train.txt, val.txt) OUT_DIR');
  const [phiPath, dataDir, out] = process.argv.slice(2);
  fs.mkdirSync(out, { recursive: true });
  const tjPath = path.join(out, 'tokenizer.json');
  fs.writeFileSync(tjPath, JSON.stringify(buildTokenizer(phiPath), null, 1) + '\n');
  const tok = Tokenizer.fromFile(tjPath);
  const bos = tok.tokenToId('<|begin_of_text|>'), eos = tok.tokenToId('<|end_of_text|>');
  if (bos !== 8190 || eos !== 8191 || tok.getVocabSize(true) !== 8192) fail(`${tjPath}: bos ${bos} eos ${eos} vocab ${tok.getVocabSize(true)}; want 8190 8191 8192`);
  const meta = { tokenizer: 'tokenizer.json', made_by: 'bench/torch/llama_tokens.js with @anush008/tokenizers 0.6.0 (HF tokenizers 0.22.2)',
                 bos_token_id: bos, eos_token_id: eos, vocab_size: 8192, dtype: 'uint16 little-endian, gzip',
                 protocol: 'split on "\\n\\n", encode(doc, add_special_tokens=true), append eos after each document' };
  for (const name of ['val', 'train']) {
    const t0 = Date.now();
    const s = await stream(tok, path.join(dataDir, name + '.txt'), bos, eos);
    fs.writeFileSync(path.join(out, name + '.u16.gz'), zlib.gzipSync(s.buf, { level: 9 }));
    meta[name] = { file: name + '.u16.gz', documents: s.docs, tokens: s.tokens,
                   sha256: crypto.createHash('sha256').update(s.buf).digest('hex') };
    console.log(name, s.docs, 'documents', s.tokens, 'tokens', ((Date.now() - t0) / 1000).toFixed(1) + 's');
  }
  // A round trip of the first val document, as a sanity check.
  const first = fs.readFileSync(path.join(dataDir, 'val.txt'), 'utf8').split('\n\n')[0];
  const e = await tok.encode(first, null, { addSpecialTokens: false });
  const back = await tok.decode(e.getIds(), false);
  if (back !== first) fail('val.txt: the first document does not decode back to itself');
  meta.first_val_document_ids = e.getIds().slice(0, 32);
  fs.writeFileSync(path.join(out, 'tokens.json'), JSON.stringify(meta, null, 1) + '\n');
}

main().catch((e) => fail(String(e && e.stack || e)));
