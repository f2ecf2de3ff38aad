"""Turn a follow-up ("那2024年呢?") into a standalone question before retrieval.

Without an LLM this is a rule: a short follow-up that leans on the previous question
(a demonstrative, a trailing 呢, "what about") borrows that question, with the follow-up's
years, numbers and names put in place of the old ones. With an LLM, the model rewrites it,
and the rule is the fallback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence

import jieba.posseg

from rag.errors import LLMError
from rag.llm import ChatClient
from rag.markup import strip_markup
from rag.question import detect_language

log = logging.getLogger(__name__)

_YEAR = re.compile(r"(?:19|20)\d{2}\s*年?")
MAX_FOLLOW_UP = 20
QUESTION_END = "[?\uff1f]*$"
QUESTION_MARK = {"en": "?", "zh": "\uff1f"}
QUESTION_WORDS = r"什么|多少|谁|哪|几|如何|怎么|为什么|是否|吗"

REWRITE_PROMPT = (
    "Rewrite the user's last question so that it can be understood without the conversation. "
    "Keep its language. Reply with the rewritten question only."
)


def needs_context(question: str) -> bool:
    """A short question that refers back ("那2024年呢?", "what about Qwen?")."""
    q = question.strip()
    if len(q) > MAX_FOLLOW_UP * (3 if detect_language(q) == "en" else 1):
        return False
    starts = re.match(r"^(那|那么|它|他|她|他们|其|还有|另外|and\b|what about|how about)", q, re.I)
    if starts:
        return True
    # "那吴泳铭呢?" leans on the previous question; "最高降幅是多少呢?" asks its own.
    asks = re.search(QUESTION_WORDS, q)
    return re.sub(QUESTION_END, "", q).endswith("呢") and not asks


def rule_rewrite(previous: str, follow_up: str) -> str:
    """Put the follow-up's years into the previous question, or join the two."""
    new_years = _YEAR.findall(follow_up)
    old_years = _YEAR.findall(previous)
    if new_years and old_years:
        rewritten = previous
        for old, new in zip(old_years, new_years, strict=False):
            rewritten = rewritten.replace(old.strip(), new.strip(), 1)
        return rewritten
    core = re.sub(
        r"^(那么?|还有|另外|and|what about|how about)\s*", "", follow_up.strip(), flags=re.I
    )
    core = re.sub(r"[呢吗]?" + QUESTION_END, "", core)
    base = re.sub(QUESTION_END, "", previous.strip())
    mark = QUESTION_MARK[detect_language(previous)]
    # A new subject ("那腾讯云呢?") takes over what was asked; a pronoun ("它的下载量呢?")
    # keeps the old subject, so the two questions are joined instead.
    pronoun = re.match(r"(它|他|她|其|他们|它们|该)", core)
    asked = predicate(base) if detect_language(previous) == "zh" and not pronoun else None
    if asked:
        # "那通义千问呢?" after "X最高降价多少?" asks "通义千问最高降价多少?"
        return f"{core}{asked}{mark}"
    return f"{base} {core}".strip() + mark


def predicate(question: str) -> str | None:
    """What a Chinese question asks of its subject: "最高降价多少" in "X相比Y最高降价多少".

    From the question word back to the last noun before it, so a follow-up naming a new
    subject can ask the same thing of it.
    """
    words = jieba.posseg.lcut(question)
    asking = [i for i, (w, _) in enumerate(words) if re.search(QUESTION_WORDS, w)]
    if not asking:
        return None
    start = asking[-1]

    def noun(i: int) -> bool:
        return words[i].flag.startswith(("n", "r", "eng"))

    # Nouns right before the question word are the attribute asked ("降价多少", "份额是多少");
    # then the verbs and modifiers before them, up to the subject's last noun.
    def attribute(w: jieba.posseg.pair) -> bool:
        common_noun = w.flag in ("n", "vn", "an") and len(w.word) > 1  # "份额", not "云"
        return common_noun or w.flag == "uj" or w.word in ("是", "为", "有")

    while start > 0 and attribute(words[start - 1]):
        start -= 1
    while start > 0 and not noun(start - 1):
        start -= 1
    text = "".join(w for w, _ in words[start:]).strip()
    return text or None


def usable_rewrite(reply: str, question: str, previous: str) -> str | None:
    """The model's first line as a plain-text question, or None when it is not one.

    The rewrite becomes the question we retrieve with and echo back, so markup goes and a
    reply that is empty, rambling or a paragraph is refused in favour of the rules.
    """
    lines = [line.strip() for line in strip_markup(reply).splitlines() if line.strip()]
    if not lines:
        return None
    rewritten = lines[0]
    if len(rewritten) > 4 * max(len(question), len(previous)):
        return None
    return rewritten


def standalone_question(
    history: Sequence[str], question: str, llm: ChatClient | None = None
) -> tuple[str, str | None]:
    """The question to retrieve with, and the rewrite (None when the question stands alone)."""
    if not history or not needs_context(question):
        return question, None
    previous = history[-1]
    if llm is not None:
        messages = [{"role": "system", "content": REWRITE_PROMPT}]
        messages += [{"role": "user", "content": h} for h in history[-3:]]
        messages.append({"role": "user", "content": question})
        try:
            rewritten = usable_rewrite(llm.complete(messages), question, previous)
        except LLMError as exc:
            log.info("follow-up rewrite by rules", extra={"reason": exc.message})
            rewritten = None
        if rewritten:
            return rewritten, rewritten
    rewritten = rule_rewrite(previous, question)
    return rewritten, rewritten
