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


def pickled_state_dict(tensors, storage_class):
    """The pickle torch.save writes (protocol 2) for a state dict of `tensors` (name -> shape),
    each the whole of storage str(i) of its class."""

    def string(text):
        data = text.encode()
        return b"X" + struct.pack("<I", len(data)) + data

    def ints(values):
        return b"(" + b"".join(b"J" + struct.pack("<i", v) for v in values) + b"t"

    out = b"\x80\x02}("
    for i, (name, shape) in enumerate(tensors.items()):
        count, strides = 1, []
        for d in reversed(shape):
            strides.insert(0, count)
            count *= d
        out += string(name) + b"ctorch._utils\n_rebuild_tensor_v2\n(("
        out += string("storage") + f"ctorch\n{storage_class}\n".encode() + string(str(i)) + string("cpu")
        out += b"J" + struct.pack("<i", count) + b"tQ" + b"J" + struct.pack("<i", 0) + ints(shape) + ints(strides)
        out += b"\x89ccollections\nOrderedDict\n)RtR"
    return out + b"u."


def load_pickle():
    import io
    import zipfile
    _, tensors = tiny_gpt2()
    shapes = {name: shape for name, (shape, _) in tensors.items()}
    # Even first byte: storage sizes and data.pkl, the zip built by the target.
    for name, storage_class, size in [("f32", "FloatStorage", 4), ("f16", "HalfStorage", 2)]:
        sizes = [size * len(values) for _, values in tensors.values()]
        header = bytes([0, len(sizes)]) + struct.pack(f"<{len(sizes)}H", *sizes)
        write("load_pickle", name, header + pickled_state_dict(shapes, storage_class))
    # Odd first byte: a whole file, as torch.save lays it out (stored entries, little-endian).
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("archive/data.pkl", pickled_state_dict({"transformer." + k: v for k, v in shapes.items()}, "HalfStorage"))
        archive.writestr("archive/byteorder", "little")
        for i, (_, values) in enumerate(tensors.values()):
            archive.writestr(f"archive/data/{i}", b"".join(to_half(v, "F16") for v in values))
        archive.writestr("archive/version", "3\n")
    write("load_pickle", "file-f16", b"\x01" + buffer.getvalue())


def shard_index():
    index = {"metadata": {"total_size": 1024}, "weight_map": {
        "wte.weight": "model-00001-of-00002.safetensors", "wpe.weight": "model-00001-of-00002.safetensors",
        "h.0.ln_1.weight": "model-00002-of-00002.safetensors"}}
    write("shard_index", "two-shards", json.dumps(index))


def bytes_to_unicode():
    """GPT-2's byte-level alphabet in its vocabulary's id order: each byte as the printable
    character that stands for it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1))
    bs += list(range(ord("\u00ae"), ord("\u00ff") + 1))
    cs, n = bs[:], 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return [chr(c) for c in cs]


def tokenizer_files():
    alphabet = bytes_to_unicode()
    merges = [("\u0120", "t"), ("h", "e"), ("\u0120t", "he"), ("i", "n")]
    tokens = alphabet + [a + b for a, b in merges] + ["<|endoftext|>"]
    vocab = {token: i for i, token in enumerate(tokens)}
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": len(tokens) - 1, "content": "<|endoftext|>", "single_word": False, "lstrip": False,
                          "rstrip": False, "normalized": False, "special": True}],
        "normalizer": None, "pre_tokenizer": byte_level,
        "post_processor": {"type": "TemplateProcessing", "single": [{"Sequence": {"id": "A", "type_id": 0}}],
                           "pair": [{"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}],
                           "special_tokens": {}},
        "decoder": byte_level,
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [list(m) for m in merges]},
    }
    text = "then the thin<|endoftext|> in\n".encode()
    dump = lambda value: json.dumps(value, ensure_ascii=False).encode()
    write("tokenizer_files", "tokenizer-json", b"\0" + dump(tokenizer) + b"\0" + text)
    older = dict(tokenizer, post_processor=byte_level, pre_tokenizer=dict(byte_level, add_prefix_space=True))
    older["model"] = dict(tokenizer["model"], merges=[f"{a} {b}" for a, b in merges])
    write("tokenizer_files", "tokenizer-json-prefix-space", b"\0" + dump(older) + b"\0" + text)
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    write("tokenizer_files", "vocab-merges", b"\1" + dump(vocab) + b"\0" + merges_txt.encode() + b"\0" + text)


if __name__ == "__main__":
    load_model()
    load_gguf()
    load_pickle()
    shard_index()
    tokenizer_files()
    for name, text in TEXTS.items():
        write("tokenizer_roundtrip", name, text)
    text_stream()
    generate_options()
