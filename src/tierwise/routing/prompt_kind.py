"""The kind of task a prompt asks for, from its form: listed options to choose from,
code to write, a word problem with numbers, or anything else (open-ended chat and
instructions). The pretrained router trusts its model only on the kinds where it beat
random routing on benchmarks it was not trained on, and the kind decides which.
"""

from __future__ import annotations

import re

from tierwise.embeddings.structure import CHOICES, CODE, NUMBER

MULTIPLE_CHOICE, CODE_TASK, MATH, OPEN = "multiple_choice", "code", "math", "open"
KINDS = (MULTIPLE_CHOICE, CODE_TASK, MATH, OPEN)
CODE_WORDS = re.compile(
    r"\b(python|javascript|java|c\+\+|sql|regex|function|program|script|algorithm|"
    r"implement|compile|class|method)\b",
    re.I,
)
ASKS_QUANTITY = re.compile(
    r"\b(how (many|much|long|far|old)|what is the (total|sum|number|value|cost|price)|"
    r"calculate|compute|solve|find)\b",
    re.I,
)


def prompt_kind(text: str) -> str:
    """One of `KINDS` for `text` (checked in that order): two listed options or more;
    code or a word about programming; two numbers or more and a question."""
    if len(CHOICES.findall(text)) >= 2:
        return MULTIPLE_CHOICE
    if CODE.search(text) or CODE_WORDS.search(text):
        return CODE_TASK
    asks = ASKS_QUANTITY.search(text) or text.rstrip().endswith("?")
    if asks and len(NUMBER.findall(text)) >= 2:
        return MATH
    return OPEN
