// Writes the reference ids of Hugging Face tokenizers for every tokenizer
// file and text file of this directory (see README.md):
//
//   cd /tmp/tokref && npm install @anush008/tokenizers@0.6.0
//   NODE_PATH=/tmp/tokref/node_modules node tokenizer/testdata/hf/make_refs.js ../shared/data/en/val.txt
//
// Each text is split into documents on "\n\n", and each document's ids are
// those of encode(document, add_special_tokens=True), written as one line of
// ids separated by spaces. NAME.adversarial.ids.gz holds these lines for
// adversarial.txt; NAME.val.sha256 holds, to stay small, the first 16 hex
// digits of the SHA-256 of each line for val.txt.
// NAME.adversarial.decoded.json holds decode(ids, skip_special_tokens=false)
// of each adversarial document, and NAME.decode.json pairs of ids and their
// decoding: the ids of each adversarial document without special tokens,
// then 200 random id sequences.
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');
const crypto = require('crypto');
const { Tokenizer } = require('@anush008/tokenizers');

async function main() {
  const dir = __dirname;
  const texts = { val: fs.readFileSync(process.argv[2], 'utf8'), adversarial: fs.readFileSync(path.join(dir, 'adversarial.txt'), 'utf8') };
  for (const name of ['llama3', 'qwen2', 'llama2', 'metaspace', 'metaspace_split']) {
    const tok = Tokenizer.fromFile(path.join(dir, name + '.json'));
    for (const [tname, text] of Object.entries(texts)) {
      const lines = [];
      const decoded = [];
      for (const doc of text.split('\n\n')) {
        const ids = (await tok.encode(doc, null, { addSpecialTokens: true })).getIds();
        lines.push(ids.join(' '));
        if (tname === 'adversarial') decoded.push(await tok.decode(ids, false));
      }
      if (tname === 'adversarial') {
        // Decoding without the template's tokens (so that Strip acts), and
        // of random id sequences (invalid byte-fallback runs included).
        const cases = [];
        for (const doc of text.split('\n\n')) {
          const ids = (await tok.encode(doc, null, { addSpecialTokens: false })).getIds();
          cases.push({ ids, text: await tok.decode(ids, false) });
        }
        let seed = 17;
        const rand = (n) => { seed = (seed * 1103515245 + 12345) % 2147483648; return seed % n; };
        const size = tok.getVocabSize(true);
        for (let i = 0; i < 200; i++) {
          const ids = Array.from({ length: 1 + rand(8) }, () => rand(size));
          cases.push({ ids, text: await tok.decode(ids, false) });
        }
        fs.writeFileSync(path.join(dir, `${name}.decode.json`), JSON.stringify(cases) + '\n');
      }
      if (tname === 'val') {
        const sums = lines.map((l) => crypto.createHash('sha256').update(l).digest('hex').slice(0, 16));
        fs.writeFileSync(path.join(dir, `${name}.val.sha256`), sums.join('\n') + '\n');
      } else {
        fs.writeFileSync(path.join(dir, `${name}.${tname}.ids.gz`), zlib.gzipSync(lines.join('\n') + '\n', { level: 9 }));
      }
      if (tname === 'adversarial') fs.writeFileSync(path.join(dir, `${name}.adversarial.decoded.json`), JSON.stringify(decoded, null, 1) + '\n');
    }
  }
}
main().catch((e) => { console.error(e); process.exit(1); });
