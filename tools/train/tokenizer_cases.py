#!/usr/bin/python3
"""Write test strings + the Python encoder's ids, for check_tokenizer_js.mjs to compare against
@huggingface/tokenizers.  Usage: /usr/bin/python3 tokenizer_cases.py TOKENIZER_DIR OUT.json"""
import json
import sys

from bpe import Tokenizer, iter_docs

tok = Tokenizer(sys.argv[1] + '/tokenizer.json')
texts = [
    'The whale', 'In the beginning', 'Mr. Speaker,', 'Hello world', '', ' ', '  leading spaces',
    "don't won't it's we'll I'd they're I've I'm", "DON'T 'S", 'x  \n\n  y\t\tz \n',
    'naïve café — “quotes” «guillemets» 日本語 中文 한국어 🐋🐳 e\u0301', '3.14159 1,000,000 1790s',
    'tabs\tand\r\nCRLF\r\n', '<|endoftext|>', 'a<|endoftext|>b <|endoftext|> c', '\u00a0nbsp\u2009thin',
    '\x00\x01\x1f control', 'ﬁ ligature Ⅻ ½ ² ٣', 'emoji 👩‍👩‍👧 flag 🇺🇸', 'URL https://example.com/a?b=c&d=e',
    'Call me Ishmael. Some years ago—never mind how long precisely—having little or no money',
]
for i, t in enumerate(iter_docs('heldout')):
    if i % 5 == 0:
        texts.append(t)
cases = []
for t in texts:
    ids = tok.encode(t)
    assert tok.decode(ids) == t, repr(t[:80])
    cases.append({'text': t, 'ids': ids})
json.dump(cases, open(sys.argv[2], 'w'), ensure_ascii=False)
print(f'{len(cases)} cases written, python round-trip ok')
