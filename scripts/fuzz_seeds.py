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


def gguf(tensors, token_list, matrix_type="F32"):
    """A GPT-2 GGUF (version 3) as llama.cpp lays one out: metadata, tensor infos, then the data
    aligned to 32 bytes; matrices in `matrix_type` (F32 or Q8_0), 1-D tensors F32."""

    def string(text):
        data = text.encode()
        return struct.pack("<Q", len(data)) + data

    def kv(key, kind, payload):
        return string(key) + struct.pack("<I", kind) + payload

    u32, f32, s = 4, 6, 8
    n_embd, n_layer = tensors["token_embd.weight"][0][0], 1
    meta = [
        kv("general.architecture", s, string("gpt2")),
        kv("gpt2.context_length", u32, struct.pack("<I", tensors["position_embd.weight"][0][1])),
        kv("gpt2.embedding_length", u32, struct.pack("<I", n_embd)),
        kv("gpt2.feed_forward_length", u32, struct.pack("<I", 4 * n_embd)),
        kv("gpt2.block_count", u32, struct.pack("<I", n_layer)),
        kv("gpt2.attention.head_count", u32, struct.pack("<I", 1)),
        kv("gpt2.attention.layer_norm_epsilon", f32, struct.pack("<f", 1e-5)),
        kv("tokenizer.ggml.model", s, string("gpt2")),
        kv("tokenizer.ggml.pre", s, string("gpt-2")),
        kv("tokenizer.ggml.tokens", 9, struct.pack("<IQ", s, len(token_list)) + b"".join(map(string, token_list))),
        kv("tokenizer.ggml.merges", 9, struct.pack("<IQ", s, 0)),
        kv("tokenizer.ggml.eos_token_id", u32, struct.pack("<I", len(token_list) - 1)),
    ]
    infos, data = b"", b""
    for name, (dims, values) in tensors.items():
        quantized = matrix_type == "Q8_0" and len(dims) == 2 and dims[0] % 32 == 0 and name != "position_embd.weight"
        if quantized:  # Q8_0: per 32 values, an f16 scale then 32 int8
            payload = b""
            for start in range(0, len(values), 32):
                block = values[start:start + 32]
                d = max(abs(v) for v in block) / 127
                payload += struct.pack("<e", d) + bytes((round(v / d) if d else 0) & 0xFF for v in block)
        else:
            payload = struct.pack(f"<{len(values)}f", *values)
        data += b"\0" * (-len(data) % 32)
        infos += string(name) + struct.pack("<I", len(dims)) + struct.pack(f"<{len(dims)}Q", *dims)
        infos += struct.pack("<IQ", 8 if quantized else 0, len(data))
        data += payload
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(meta)) + b"".join(meta) + infos
    return header + b"\0" * (-len(header) % 32) + data


def load_gguf():
    n_embd, vocab, positions = 32, 4, 4
    values = lambda count, seed: [((i * 37 + seed) % 17 - 8) / 40 for i in range(count)]
    # ggml dims, innermost first: a matrix of `out` rows of `in` values is [in, out].
    shapes = {
        "token_embd.weight": [n_embd, vocab],
        "position_embd.weight": [n_embd, positions],
        "blk.0.attn_norm.weight": [n_embd], "blk.0.attn_norm.bias": [n_embd],
        "blk.0.attn_qkv.weight": [n_embd, 3 * n_embd], "blk.0.attn_qkv.bias": [3 * n_embd],
        "blk.0.attn_output.weight": [n_embd, n_embd], "blk.0.attn_output.bias": [n_embd],
        "blk.0.ffn_norm.weight": [n_embd], "blk.0.ffn_norm.bias": [n_embd],
        "blk.0.ffn_up.weight": [n_embd, 4 * n_embd], "blk.0.ffn_up.bias": [4 * n_embd],
        "blk.0.ffn_down.weight": [4 * n_embd, n_embd], "blk.0.ffn_down.bias": [n_embd],
        "output_norm.weight": [n_embd], "output_norm.bias": [n_embd],
    }
    tensors = {}
    for i, (name, dims) in enumerate(shapes.items()):
        count = 1
        for d in dims:
            count *= d
        tensors[name] = (dims, [1.0] * count if name.endswith("norm.weight") else values(count, i))
    token_list = ["!", '"', "#", "<|endoftext|>"]
    write("load_gguf", "f32", gguf(tensors, token_list))
    write("load_gguf", "q8_0", gguf(tensors, token_list, "Q8_0"))


if __name__ == "__main__":
    load_model()
    load_gguf()
    for name, text in TEXTS.items():
        write("tokenizer_roundtrip", name, text)
    text_stream()
    generate_options()
