"""Prompt templates of ``adt generate``, versioned, in English and Chinese: the one place their texts live.

A template is ``gen-<method>-<language>@<version>`` (``gen-topic-zh@1``, ``gen-paraphrase-en@1``); every
generated item records the id@version and the hash of the prompt it was written from (the prompt hash rule
is ``runners.prompt_hash``, the one the runners store with every response). A changed text gets a new
version; a stored id@version always names the text it had.

Every item template asks for one JSON object with the schema ``adt.workflow.generate.parse_output`` checks:
``question``, ``choices`` (a list; empty for open and numeric items), ``answer``, ``rationale``, ``tags``; the
``solver`` template asks for a ``solve(n0, n1, ...)`` program instead (``itembank.variants.renumber``'s contract).
Placeholders are ``str.format`` fields filled by ``render``: item and document text is inserted as data,
never interpreted (braces in it are not format fields: it is substituted after formatting the template).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from adtbase.errors import InputError
from runners import prompt_hash

LANGUAGES = ("en", "zh")

_SCHEMA = {
    "en": ('Reply with one JSON object and nothing else: {{"question": "...", "choices": ["...", "..."], '
           '"answer": "...", "rationale": "...", "tags": {{}}}}. For a multiple-choice item give 4 choices and the '
           'answer as the letter of the correct one (A, B, C, D); for an open or numeric item give "choices": [] and '
           'the answer as the exact text or number.'),
    "zh": ('只输出一个 JSON 对象，不要输出其他内容：{{"question": "...", "choices": ["...", "..."], '
           '"answer": "...", "rationale": "...", "tags": {{}}}}。选择题给出 4 个选项，答案写正确选项的字母'
           '（A、B、C、D）；开放题或数值题写 "choices": []，答案写准确的文字或数字。'),
}

_TEXTS: dict[tuple[str, str], str] = {
    ("topic", "en"): ("You write test items for evaluating language models.\n"
                      "Write one new {item_type_name} item for this slice: {spec}.\n"
                      "It must be different from the examples below, self-contained, and have exactly one "
                      "correct answer.\n{schema}\n\n{exemplars}Item number {number}:"),
    ("topic", "zh"): ("你为评测大语言模型编写试题。\n请为以下范围写一道新的{item_type_name}：{spec}。\n"
                      "题目必须与下面的示例不同，独立完整，并且只有一个正确答案。\n{schema}\n\n{exemplars}第 {number} 题："),
    ("document", "en"): ("You write test items grounded in a document the operator owns.\n"
                         "Write one {item_type_name} item that can be answered from the passage below alone, "
                         "with exactly one correct answer.\n{schema}\n\nPassage:\n<<<\n{passage}\n>>>\n"
                         "Item number {number}:"),
    ("document", "zh"): ("你根据用户提供的文档编写试题。\n请写一道{item_type_name}，只凭下面的段落即可作答，"
                         "并且只有一个正确答案。\n{schema}\n\n段落：\n<<<\n{passage}\n>>>\n第 {number} 题："),
    ("paraphrase", "en"): ("Rewrite the test item below in other words. Keep its meaning, its difficulty, its "
                           "choices' meaning and its correct answer.\n{schema}\n\nItem:\n{parent}\n\nRewritten item:"),
    ("paraphrase", "zh"): ("请换一种说法改写下面的试题。保持题意、难度、各选项的含义和正确答案不变。\n{schema}\n\n"
                           "试题：\n{parent}\n\n改写后的试题："),
    ("distractors", "en"): ("Rewrite the wrong choices of the multiple-choice item below into more plausible "
                            "distractors. Keep the question and the correct choice word for word and at the "
                            "same letter.\n{schema}\n\nItem:\n{parent}\n\nRewritten item:"),
    ("distractors", "zh"): ("请把下面选择题的错误选项改写成更有迷惑性的干扰项。题干和正确选项一字不改，"
                            "且字母位置不变。\n{schema}\n\n试题：\n{parent}\n\n改写后的试题："),
    # Translation: the template of the target language (the parent is in the other one).
    ("translate", "en"): ("Translate the test item below into English. Keep its meaning, its choices in the "
                          "same order and its correct answer.\n{schema}\n\nItem:\n{parent}\n\nEnglish item:"),
    ("translate", "zh"): ("请把下面的试题翻译成中文。保持题意、选项顺序和正确答案不变。\n{schema}\n\n"
                          "试题：\n{parent}\n\n中文试题："),
    # Renumbering (itembank.variants.renumber): the model writes the solver; the sandbox computes the new key.
    ("solver", "en"): ("Write a Python function that computes the answer of the test item below from the numbers in "
                       "its question, so the item can be re-asked with other numbers.\nThe numbers, in reading order, "
                       "are the arguments: {numbers}.\nDefine `def solve({args}):` returning the answer as a number "
                       "(for a multiple-choice item: the value of the correct option). Use only the standard library. "
                       "Reply with the program alone in one ```python block.\n\nItem:\n{parent}\n\nProgram:"),
    ("solver", "zh"): ("请写一个 Python 函数，根据下面试题题干中的数字计算答案，以便换一组数字重新出题。\n"
                       "题干中的数字按出现顺序作为参数：{numbers}。\n定义 `def solve({args}):`，以数字形式返回答案"
                       "（选择题返回正确选项的数值）。只用标准库。只回复一个 ```python 代码块。\n\n试题：\n{parent}\n\n程序："),
}

_TYPE_NAMES = {"en": {"mc": "multiple-choice", "open": "open-answer", "numeric": "numeric-answer",
                      "multi": "select-all-that-apply"},
               "zh": {"mc": "选择题", "open": "问答题", "numeric": "数值题", "multi": "多选题"}}

VERSION = 1
METHOD_TEMPLATES = ("topic", "document", "paraphrase", "distractors", "translate", "solver")


@dataclass(frozen=True)
class GenTemplate:
    """One versioned generation prompt."""

    name: str       # one of METHOD_TEMPLATES
    language: str
    version: int
    text: str

    @property
    def ref(self) -> str:
        return f"gen-{self.name}-{self.language}@{self.version}"


TEMPLATES: dict[str, GenTemplate] = {
    t.ref: t for t in (GenTemplate(name, lang, VERSION, text) for (name, lang), text in _TEXTS.items())}


def template_for(name: str, language: str) -> GenTemplate:
    """The current template of ``name`` in ``language``; InputError naming what exists otherwise."""
    if language not in LANGUAGES:
        raise InputError(f"generation prompts exist in {', '.join(LANGUAGES)}, not {language!r} (--language)")
    ref = f"gen-{name}-{language}@{VERSION}"
    if ref not in TEMPLATES:
        raise InputError(f"no generation template {name!r} (have: {', '.join(METHOD_TEMPLATES)})")
    return TEMPLATES[ref]


def render(template: GenTemplate, fields: Mapping[str, str]) -> tuple[str, str]:
    """(prompt, prompt hash). User text (passages, items, exemplars) is substituted after the template's
    own fields are formatted, so braces in it are kept as text."""
    lang = template.language
    holes = {k: f"\x00{k}\x00" for k in fields}
    item_type = fields.get("item_type", "mc")
    text = template.text.format(schema=_SCHEMA[lang].format(), item_type_name=_TYPE_NAMES[lang].get(item_type, item_type),
                                **{k: v for k, v in holes.items() if k != "item_type"})
    for k, v in fields.items():
        text = text.replace(holes[k], v)
    return text, prompt_hash(text)
