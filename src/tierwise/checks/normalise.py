"""Answer normalisation shared by the offline cascade evaluation and the gateway's
`vote` check, so both compare answers the same way.

For a multiple-choice prompt (one whose text lists options such as `A) ...`, `B) ...`
or `1) ...`), an answer normalises to the option label it names; for any other prompt,
to the Python code in the answer (as an AST dump, so formatting and comments do not
matter) when it parses. Anything else (a refusal such as "I do", an empty answer, code
that does not parse) is no answer (None). A prompt's category (`choice2`, `choiceN`,
`open`) comes from the same reading of its options.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping

OPEN = "open"
CATEGORIES = ("choice2", "choiceN", OPEN)

_OPTION = re.compile(r"^\s*\(?([A-Z](?=[).:])|[1-9](?=\)))[).:]\s+(\S.*?)\s*$", re.MULTILINE)
_PREFIX = re.compile(
    r"^(?:the\s+)?(?:correct\s+|final\s+)?(?:answer|option|choice)\b\s*(?:is\s*)?:?\s*", re.I
)
_LABEL = re.compile(r"^[(\[]?([A-Za-z]|\d{1,2})[)\]]?(?=$|[.:,;)]|\s*[(\-\u2013:])")
_FENCE = re.compile(r"```[ \t]*(?:python|py|Python)?[ \t]*\n(.*?)```", re.S)
_TAGGED = re.compile(r"\[PYTHON\](.*?)\[/PYTHON\]", re.S)


def options(prompt: str) -> dict[str, str]:
    """The options a prompt lists, label to text: lines `A) text`, `(B) text`, `C. text`
    or `1) text` (not `1. text`, a numbered list), taking the run of consecutive labels
    from A (or 1)."""
    found: dict[str, str] = {}
    for match in _OPTION.finditer(prompt):
        found.setdefault(match.group(1), match.group(2))
    for first in ("A", "1"):
        run: dict[str, str] = {}
        label = first
        while label in found:
            run[label] = found[label]
            label = chr(ord(label) + 1)
        if len(run) >= 2:
            return run
    return {}


def category(prompt: str) -> str:
    """`choice2` (two options), `choiceN` (three or more) or `open` (no options)."""
    count = len(options(prompt))
    if count >= 3:
        return "choiceN"
    return "choice2" if count == 2 else OPEN


def normalise_choice(answer: str, labels: Mapping[str, str]) -> str | None:
    """The option label a multiple-choice answer names ("D", "C\\n", "(B)", "A) text",
    "Answer: 2", or exactly one option's text), else None."""
    text = _PREFIX.sub("", answer.strip(), count=1)
    match = _LABEL.match(text)
    if match is not None:
        label = match.group(1).upper()
        return label if label in labels else None
    plain = text.rstrip(".").strip().lower()
    hits = [k for k, v in labels.items() if plain and plain == v.rstrip(".").strip().lower()]
    return hits[0] if len(hits) == 1 else None


def normalise_code(answer: str) -> str | None:
    """The Python code of an answer (fenced or [PYTHON] blocks, else the whole text;
    Windows line ends read as newlines) as an AST dump, or None when there is none or it
    does not parse."""
    text = answer.replace("\r\n", "\n")
    blocks = _FENCE.findall(text) or _TAGGED.findall(text)
    code = "\n".join(blocks) if blocks else text
    if not code.strip():
        return None
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    return ast.dump(tree) if tree.body else None


def normalise(answer: str, prompt: str) -> str | None:
    """`normalise_choice` for a prompt with options, else `normalise_code`."""
    labels = options(prompt)
    return normalise_choice(answer, labels) if labels else normalise_code(answer)
