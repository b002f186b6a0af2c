"""A tiny local causal LM for tests and smoke runs: no downloads, built in about a second.

``build_tiny_model(path)`` trains a byte-level BPE tokenizer (512 tokens, so any English or Chinese
text encodes) on generated text and saves it as a ``PreTrainedTokenizerFast`` beside a randomly
initialised ``LlamaForCausalLM`` (2 layers, hidden 128, 4 heads of dimension 32, 2 key/value heads),
in float32, with a small chat template. The vLLM CPU build loads the same directory (head dimension
>= 32). Weights are drawn with a larger initialiser range than Llama's default (0.02), so attention
and positions matter for the outputs: a mistake in masks or position ids moves log-likelihoods by
far more than test tolerances.

Torch and transformers are imported inside the functions; the global torch RNG is left as it was.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SPECIAL_TOKENS = ("<unk>", "<s>", "</s>", "<pad>")
CHAT_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)

_WORDS = (
    "the a of to and in is was for on that with as by at from this be are or which an not have it "
    "question answer choice option correct following multiple true false number total cost price "
    "apple river city paris london rome berlin water energy cell law market theory history value "
    "first second third more less than equal sum difference product many much each every how what "
    "who when where why because therefore solve find compute years days hours meters dollars cats"
).split()
_ZH = (
    "的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动同工也能下过子说产种面而方后多定行学法所民得经十三之进着等部度家电力里如水化高自二理起小物现实加量都两体制机当使点从业本去把性好应开它合还因由其些然前外天政四日那社义事平形相全表间样与关各重新线内数正心反你明看原又么利比或但质气第向道命此变条只没结解问意建月公无系军很情者最立代想已通并提直题党程展五果料象员革位入常文总次品式活设及管特件长求老头基资边流路级少图山统接知较将组见计别她手角期根论运农指几九区强放决西被干做必战先回则任取据处队南给色光门即保治北造百规热领七海口东导器压志世金增争济阶油思术极交受联什认六共权收证改清己美再采转更单风切打白教速花带安场身车例真务具万每目至达走积示议声报斗完类八离华名确才科张信马节话米整空元况今集温传土许步群广石记需段研界拉林律叫且究观越织装影算低持音众书布复容儿须际商非验连断深难近矿千周委素技备半办青省列习响约支般史感劳便团往酸历市克何除消构府称太准精值号率族维划选标写存候毛亲快效斯院查江型眼王按格养易置派层片始却专状育厂京识适属圆包火住调满县局照参红细引听该铁价严"  # noqa: E501
)


def training_corpus(rng: np.random.Generator, n_lines: int = 3000) -> list[str]:
    """Generated English, Chinese and arithmetic lines in the shapes prompts take."""
    lines = []
    zh = list(_ZH)
    for i in range(n_lines):
        kind = i % 4
        if kind == 0:
            words = rng.choice(_WORDS, size=int(rng.integers(5, 16)))
            lines.append("Question: " + " ".join(words).capitalize() + "?")
        elif kind == 1:
            letter = "ABCDEFGHIJ"[int(rng.integers(0, 10))]
            words = rng.choice(_WORDS, size=int(rng.integers(1, 5)))
            lines.append(f"{letter}. " + " ".join(words) + f"\nAnswer: {letter}")
        elif kind == 2:
            chars = rng.choice(zh, size=int(rng.integers(6, 20)))
            lines.append("题目：" + "".join(chars) + "？\n答案：" + "ABCD"[int(rng.integers(0, 4))])
        else:
            x, y = (int(v) for v in rng.integers(-2000, 20000, size=2))
            lines.append(f"{x} + {y} = {x + y}. The answer is {x + y:,}.\n#### {x + y}")
    return lines


def build_tiny_tokenizer(rng: np.random.Generator, vocab_size: int = 512):  # noqa: ANN201
    """A byte-level BPE ``PreTrainedTokenizerFast`` trained on ``training_corpus`` (BOS added)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS),
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(training_corpus(rng), trainer=trainer)
    bos = tok.token_to_id("<s>")
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", bos)])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>",
                                   eos_token="</s>", pad_token="<pad>")
    fast.chat_template = CHAT_TEMPLATE
    return fast


def build_tiny_model(path: str | Path, *, seed: int = 0, vocab_size: int = 512, hidden_size: int = 128,
                     num_layers: int = 2, num_heads: int = 4, num_kv_heads: int = 2,
                     initializer_range: float = 0.1) -> Path:
    """Write a tiny random Llama and its tokenizer to ``path`` (created); returns the path.

    Same ``seed`` -> same tokenizer and same weights.
    """
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    seeds = np.random.SeedSequence(seed).spawn(2)
    tokenizer = build_tiny_tokenizer(np.random.default_rng(seeds[0]), vocab_size=vocab_size)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden_size, intermediate_size=2 * hidden_size,
        num_hidden_layers=num_layers, num_attention_heads=num_heads, num_key_value_heads=num_kv_heads,
        head_dim=hidden_size // num_heads, max_position_embeddings=2048,
        initializer_range=initializer_range, tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    torch_seed = int(seeds[1].generate_state(1)[0])
    with torch.random.fork_rng(devices=[]):  # seeded init without touching the caller's RNG state
        torch.manual_seed(torch_seed)
        model = LlamaForCausalLM(config)
    model.float()
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out
