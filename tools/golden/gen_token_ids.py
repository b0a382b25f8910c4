#!/usr/bin/env python3
"""Golden token ids for crates/tokenizer, made by llama.cpp itself (llama-cpp-python).

For each shared model and each test string, records
    llama_tokenize(vocab, text, add_special, parse_special=False)
for add_special False and True, via llama-cpp-python's `Llama(model_path, vocab_only=True)`
and `tokenize(text.encode(), add_bos=add_special, special=False)`.

Only ids are written (no vocabulary dump): the Rust test reads the vocabulary from the GGUF.

    python3 tools/golden/gen_token_ids.py [--models DIR] [--out FILE]
"""
import argparse
import json
import os
import random
import sys

MODELS = [
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "gemma-3-270m-q4_k_m.gguf",
]

LONG_PARAGRAPH = (
    "The quick brown fox jumps over the lazy dog. It wasn't the first time: the fox had "
    "jumped 1,234 times before, usually around 6:30 p.m., and the dog (a 12-year-old basset "
    "named \"Rex\") had never once moved.\n\nScientists at the Institute—founded in 1987—"
    "measured the jumps with 0.001 s precision; their paper, 'On Vulpine Ballistics', "
    "reports a mean height of 42.7 cm ± 3.1 cm. Über-enthusiasts in Zürich, Kraków and "
    "São Paulo replicated it; 東京の研究者も同じ結果を得た。 Next steps?  More foxes!!!\n"
)

STRINGS = [
    # the contract prompt
    "What is 2+2?",
    "",
    " ",
    "  ",
    "a",
    "Hello world",
    "Hello, world!",
    " Hello world",
    "Hello world ",
    "   leading spaces",
    "trailing spaces   ",
    "multiple     spaces     inside",
    "tabs\tand\t\tmore\ttabs",
    "line one\nline two\n\nline four\n",
    "windows\r\nline\r\nendings",
    "\n\n\n",
    " \n \n ",
    "mixed \t\n whitespace \n\t ",
    # numbers / digit splitting
    "12345",
    "3.14159 and 2.71828",
    "1,000,000 dollars",
    "year 2024-11-25 at 23:59:59",
    "0x7fff_ffff + 0b1010",
    "ⅫⅣ and ²³ and ١٢٣",
    # contractions
    "it's they're we've I'm you'll he'd don't",
    "IT'S THEY'RE WE'VE I'M YOU'LL HE'D DON'T",
    "rock 'n' roll 'quoted'",
    # punctuation runs
    "Wait... what?!?! (really) [yes] {no} <maybe>",
    "---===***+++###",
    "email@example.com https://example.org/path?q=1&r=2#frag",
    "`backticks` and ~tildes~ and ^carets^ and |pipes|",
    # code
    "def add(a, b):\n    return a + b\n",
    "fn main() {\n    println!(\"{}\", 1 + 2);\n}\n",
    "for (int i = 0; i < n; ++i) { sum += x[i]; }",
    "    indented four\n        indented eight",
    "if x == 1:\n\tpass\nelse:\n\traise ValueError('bad')",
    "<div class=\"a\"><span>text</span></div>",
    "SELECT * FROM users WHERE id = 42;",
    # unicode
    "café naïve résumé façade",
    "Ελληνικά русский текст עברית العربية",
    "日本語のテキストと中文文本",
    "한국어 텍스트",
    "emoji 😀🎉👍🏽 and flags 🇫🇷🇯🇵",
    "👨‍👩‍👧‍👦 family",
    "e\u0301 combining acute, a\u0308 umlaut, \u0301 lone mark",
    "zero\u200bwidth\u200bspace",
    "non\u00a0breaking\u00a0space and\u3000ideographic",
    "\ufffd",
    "lone \ufffd replacement \ufffd\ufffd chars",
    "math ∑∫√∞ ≠ ≤ ≥ → ⇒",
    "ﬁ ligature ＦＵＬＬＷＩＤＴＨ",
    "\U0001F600",
    # literal special-token text (parse_special=False keeps control tokens as text)
    "<|im_start|>user\nWhat is 2+2?<|im_end|>\n<|im_start|>assistant\n",
    "<|endoftext|>",
    "<tool_call>{\"name\": \"f\"}</tool_call>",
    "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
    "<start_of_turn>user\nhi<end_of_turn>\n<start_of_turn>model\n",
    "<bos>text<eos>",
    "<unused0> [multimodal] <pad>",
    "<0x41> is not a byte token in text",
    "\u2581already escaped\u2581space",
    # long text
    LONG_PARAGRAPH,
    "a" * 300,
    "ab" * 150 + " " + "1" * 40,
]

# Seeded random strings over an alphabet of the hard cases (whitespace kinds, contractions,
# scripts, marks, emoji, unassigned code points, literal special-token text). Run against
# llama.cpp, 3000 such strings matched exactly; 200 are kept as goldens.
FUZZ_ALPHABET = list("abcXYZ019 '\t\n\r.,!?-_()[]{}<>|/\\\"$+=^~`@#%&*:;") + [
    "  ", "\n\n", "'s", "'RE", "'ll", "é", "ü", "ß", "中", "文", "日", "한", "😀", "👍🏽",
    "\u200d", "\u0301", "\u0308", "\u00a0", "\u3000", "\u2028", "\u0085", "\u2581", "\ufffd",
    "\u0378", "\U000E0001", "²", "Ⅻ", "١", "٣", "۵", "<|im_start|>", "<tool_call>",
    "<start_of_turn>", "[multimodal]", "<unused1>", "<eos>", "<0x41>", "\x0b", "\x0c", "\x1c",
    "\x7f", "ǅ", "ﬁ", "\U0001F1EB\U0001F1F7", "ʼ", "’",
]


def fuzz_strings(n=200, seed=7):
    rng = random.Random(seed)
    return ["".join(rng.choice(FUZZ_ALPHABET) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_models = os.environ.get("PARALLAX_MODELS", os.path.expanduser("~/.cache/parallax/models"))
    ap.add_argument("--models", default=default_models)
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "..", "crates", "tokenizer", "tests", "golden", "token_ids.json"))
    args = ap.parse_args()

    import llama_cpp
    from llama_cpp import Llama

    result = {
        "reference": f"llama-cpp-python {llama_cpp.__version__}: Llama(vocab_only=True).tokenize(text.encode(), add_bos=add_special, special=False)",
        "generator": "tools/golden/gen_token_ids.py",
        "models": {},
    }
    for name in MODELS:
        path = os.path.join(args.models, name)
        if not os.path.exists(path):
            sys.exit(f"missing {path}: run ../shared/models/fetch.sh")
        llm = Llama(model_path=path, vocab_only=True, verbose=False)
        cases = []
        for text in STRINGS:
            for add_special in (False, True):
                ids = llm.tokenize(text.encode("utf-8"), add_bos=add_special, special=False)
                cases.append({"text": text, "add_special": add_special, "ids": ids})
        for text in fuzz_strings():
            ids = llm.tokenize(text.encode("utf-8"), add_bos=True, special=False)
            cases.append({"text": text, "add_special": True, "ids": ids})
        result["models"][name] = cases
        print(f"{name}: {len(cases)} cases", file=sys.stderr)
        del llm

    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    # One case per line, so a changed id shows up as a one-line diff.
    with open(args.out, "w", encoding="utf-8") as f:
        f.write("{\n")
        f.write(f'"reference": {json.dumps(result["reference"])},\n')
        f.write(f'"generator": {json.dumps(result["generator"])},\n')
        f.write('"models": {\n')
        for mi, (name, cases) in enumerate(result["models"].items()):
            f.write(f"{json.dumps(name)}: [\n")
            for ci, case in enumerate(cases):
                sep = "," if ci + 1 < len(cases) else ""
                f.write(json.dumps(case, ensure_ascii=True, separators=(",", ":")) + sep + "\n")
            f.write("]" + ("," if mi + 1 < len(result["models"]) else "") + "\n")
        f.write("}\n}\n")
    json.load(open(args.out, encoding="utf-8"))  # the file must parse
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
