"""Writes the fuzz targets' seed corpora (fuzz/seeds/<target>/), small valid inputs that the
fuzzer mutates from. Standard library only: python3 scripts/fuzz_seeds.py"""

import json
import struct
from pathlib import Path

SEEDS = Path(__file__).resolve().parent.parent / "fuzz" / "seeds"


def write(target, name, data):
    folder = SEEDS / target
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_bytes(data if isinstance(data, bytes) else data.encode())


def to_half(value, dtype):
    if dtype == "F16":
        return struct.pack("<e", value)
    return struct.pack("<f", value)[2:]  # BF16: the top half of the f32


def safetensors(tensors, dtype="F32", prefix=""):
    """A safetensors file of `tensors` (name -> (shape, values)) stored as `dtype`."""
    header, data = {}, b""
    for name, (shape, values) in tensors.items():
        packed = b"".join(struct.pack("<f", v) if dtype == "F32" else to_half(v, dtype) for v in values)
        header[prefix + name] = {"dtype": dtype, "shape": shape, "data_offsets": [len(data), len(data) + len(packed)]}
        data += packed
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-aligned, as the writers align it
    return struct.pack("<Q", len(text)) + text + data


def tiny_gpt2(n_layer=1, n_embd=2, vocab=3, positions=2):
    """Every tensor of a GPT-2 with these sizes (n_inner = 4 * n_embd), small distinct values."""
    shapes = {"wte.weight": [vocab, n_embd], "wpe.weight": [positions, n_embd]}
    for i in range(n_layer):
        h, c = f"h.{i}.", n_embd
        shapes.update({
            h + "ln_1.weight": [c], h + "ln_1.bias": [c],
            h + "attn.c_attn.weight": [c, 3 * c], h + "attn.c_attn.bias": [3 * c],
            h + "attn.c_proj.weight": [c, c], h + "attn.c_proj.bias": [c],
            h + "ln_2.weight": [c], h + "ln_2.bias": [c],
            h + "mlp.c_fc.weight": [c, 4 * c], h + "mlp.c_fc.bias": [4 * c],
            h + "mlp.c_proj.weight": [4 * c, c], h + "mlp.c_proj.bias": [c],
        })
    shapes.update({"ln_f.weight": [n_embd], "ln_f.bias": [n_embd]})
    tensors = {}
    for name, shape in shapes.items():
        count = 1
        for d in shape:
            count *= d
        tensors[name] = (shape, [((i * 7) % 11 - 5) / 8 for i in range(count)])
    config = {"model_type": "gpt2", "n_layer": n_layer, "n_head": 1, "n_embd": n_embd,
              "n_positions": positions, "vocab_size": vocab, "bos_token_id": 0, "eos_token_id": vocab - 1}
    return json.dumps(config), tensors


def load_model():
    config, tensors = tiny_gpt2()
    write("load_model", "f32", config.encode() + b"\0" + safetensors(tensors))
    write("load_model", "f16-prefixed", config.encode() + b"\0" + safetensors(tensors, "F16", "transformer."))
    write("load_model", "bf16", config.encode() + b"\0" + safetensors(tensors, "BF16"))
    config, tensors = tiny_gpt2(n_layer=2, n_embd=4, vocab=5, positions=3)
    tensors["h.0.attn.bias"] = ([1, 1, 3, 3], [1.0] * 9)  # a causal-mask buffer, ignored
    write("load_model", "two-layers", config.encode() + b"\0" + safetensors(tensors))


TEXTS = {
    "notebook": "I am learning about generative ai and LLM's",
    "unicode": "é😀 ok 日本語 — naïve café\u200b\u0301",
    "special": "a<|endoftext|>b <|endoftext|><|endoftext|>",
    "spaces": "  two  spaces\n\n\ttab\r\n  ",
    "code": 'fn main() { println!("{}", 1 + 2); } // 3',
}

# GPT-2 token ids: the notebook's sentence, "é😀 ok 日本語" (the emoji and the CJK characters
# span several tokens) and "a<|endoftext|>b".
IDS = {
    "notebook": [40, 716, 4673, 546, 1152, 876, 257, 72, 290, 27140, 44, 338],
    "split-characters": [2634, 47249, 222, 12876, 10545, 245, 98, 17312, 105, 45739, 252],
    "endoftext": [64, 50256, 65],
}


def text_stream():
    for name, ids in IDS.items():
        write("text_stream", name, b"\0" + struct.pack(f"<{len(ids)}H", *ids))
    ids = IDS["notebook"]
    write("text_stream", "stop", b" about\0" + struct.pack(f"<{len(ids)}H", *ids))


def generate_options():
    configs = {
        "fixture": {"bos_token_id": 50256, "eos_token_id": 50256},
        "sampling": {"do_sample": True, "temperature": 0.7, "top_k": 5, "top_p": 0.9, "max_new_tokens": 8,
                     "eos_token_id": [1, 2], "repetition_penalty": 1.2},
        "constraints": {"no_repeat_ngram_size": 2, "bad_words_ids": [[1, 2], [3]], "suppress_tokens": [4],
                        "sequence_bias": {"(1, 2)": -1.5, "(4,)": 2.0}, "forced_eos_token_id": 5,
                        "min_new_tokens": 2, "stop_strings": "END", "num_beams": 2},
    }
    for name, config in configs.items():
        write("generate_options", name, json.dumps(config).encode() + b"\0" + bytes(range(0, 256, 3)))


if __name__ == "__main__":
    load_model()
    for name, text in TEXTS.items():
        write("tokenizer_roundtrip", name, text)
    text_stream()
    generate_options()
