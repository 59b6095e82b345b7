// Compare @huggingface/tokenizers (JS) with the Python encoder on the cases from tokenizer_cases.py.
// Run from a directory where `npm i @huggingface/tokenizers` was done:
//   node /path/to/tools/train/check_tokenizer_js.mjs TOKENIZER_DIR CASES.json
import fs from "fs";
import { createRequire } from "module";
import { pathToFileURL } from "url";
const require = createRequire(process.cwd() + "/");
const mod = await import(pathToFileURL(require.resolve("@huggingface/tokenizers")).href);
const Tokenizer = mod.Tokenizer ?? mod.default.Tokenizer;
const [dir, casesPath] = process.argv.slice(2);
const tok = new Tokenizer(
  JSON.parse(fs.readFileSync(dir + "/tokenizer.json", "utf8")),
  JSON.parse(fs.readFileSync(dir + "/tokenizer_config.json", "utf8")),
);
const cases = JSON.parse(fs.readFileSync(casesPath, "utf8"));
let bad = 0;
for (const c of cases) {
  const ids = tok.encode(c.text).ids;
  const dec = ids.length ? tok.decode(ids, { skip_special_tokens: false }) : "";
  const same = JSON.stringify(ids) === JSON.stringify(c.ids);
  if (!same || dec !== c.text) {
    bad++;
    console.log("MISMATCH", JSON.stringify(c.text).slice(0, 80), { sameIds: same, roundTrip: dec === c.text });
    console.log("  js:", JSON.stringify(ids).slice(0, 300));
    console.log("  py:", JSON.stringify(c.ids).slice(0, 300));
  }
}
console.log(`${cases.length - bad}/${cases.length} cases: JS ids == Python ids and JS decode round-trips`);
process.exit(bad ? 1 : 0);
