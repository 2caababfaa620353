"""Keywords of a transcript: the handful of words a person would search the results table for.

Chinese (and Chinese mixed with English) goes through jieba's TF-IDF restricted to nouns and English
tokens, so spoken fillers such as 然后 / 就是说 do not crowd out the subject. Text without Chinese is
ranked by frequency after dropping English stopwords and the signposts of talks ("first", "finally",
"welcome", "thank you"). English words are counted and shown in lower case, whatever case a sentence
start gave them; acronyms ("GPU", "FunASR") and names written with a capital in mid-sentence
("Whisper", "Friday") keep their spelling. jieba's dictionary takes about a second to load, so it is
loaded on first use, once, under a lock.
"""

from __future__ import annotations

import logging
import re
import threading
from collections import Counter
from typing import Any

DEFAULT_TOP_K = 10

# Parts of speech kept from jieba's tagger: nouns of every kind, verbal/adjectival nouns, abbreviations
# and Latin-script tokens ("eng"), which carry product names in mixed speech.
_JIEBA_POS = ("n", "nr", "nrt", "nrfg", "ns", "nt", "nz", "vn", "an", "j", "eng")

# Function words and the fillers of speech; transcripts are spoken language, not prose.
_ENGLISH_STOPWORDS_TEXT = """
    a about above after again against all almost also although always am among an and another any anyone
    anything are aren't around as at away back be became because been before being below between both but
    by can can't cannot could couldn't did didn't do does doesn't doing don't done down during each either
    else enough even ever every everyone everything few for from further get gets getting go goes going
    gone gonna got gotta had hadn't has hasn't have haven't having he he'd he'll he's her here here's hers
    herself him himself his how how's however i i'd i'll i'm i've if in into is isn't it it's its itself
    just kind know let let's like lot lots made make makes many may maybe me might mine more most much must
    my myself need needs never no nor not nothing now of off often oh ok okay on once one ones only onto or
    other others our ours ourselves out over own per please pretty quite rather really right said same say
    says see seem seems shall she she'd she'll she's should shouldn't since so some something sometimes
    still such sure take than that that's the their theirs them themselves then there there's these they
    they'd they'll they're they've thing things think this those though through thus to too toward towards
    uh um under until up upon us use used using very via want wants was wasn't way we we'd we'll we're
    we've well were weren't what what's whatever when when's where where's whether which while who who's
    whom whose why why's will with within without won't would wouldn't yeah yes yet you you'd you'll you're
    you've your yours yourself yourselves today tomorrow yesterday
    went come came comes coming give gave given gives giving took taken takes taking tell told tells saw
    seen look looked looks put puts keep kept find found thought try tried tries trying call called
    """

# The signposts and courtesies of a talk: every meeting has them, so they say nothing about this one.
_ENGLISH_DISCOURSE_TEXT = """
    first firstly second secondly third thirdly fourth finally lastly next last welcome thank thanks
    hello hi hey bye goodbye everyone everybody anyone anybody someone somebody guys folks alright
    actually basically anyway anyways literally obviously simply certainly definitely probably
    good great nice morning afternoon evening start started begin let's
    """

_CHINESE_STOPWORDS_TEXT = """
    我们 你们 他们 她们 它们 这个 那个 这些 那些 这样 那样 这里 那里 这种 那种 一个 一些 一下 一点 一样 什么 怎么
    为什么 怎么样 然后 就是 就是说 所以 因为 但是 还是 或者 而且 如果 虽然 已经 可以 可能 应该 需要 觉得 知道
    没有 不是 时候 东西 问题 大家 今天 现在 其实 的话 比如 比如说 对吧 是不是 有没有 非常 特别 真的 还有 之后
    之前 以后 以前 里面 方面 部分 情况 地方 事情 感觉 一般 主要 当然
    """
ENGLISH_STOPWORDS = frozenset(_ENGLISH_STOPWORDS_TEXT.split()) | frozenset(_ENGLISH_DISCOURSE_TEXT.split())
CHINESE_STOPWORDS = frozenset(_CHINESE_STOPWORDS_TEXT.split())

_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
# A word: letters, optionally joined by apostrophes or hyphens ("don't", "real-time"); digits inside
# are kept ("mp4", "h264") but a token must start with a letter.
_WORD = re.compile(r"[^\W\d_](?:[\w'’-]*\w)?")
_NUMERIC = re.compile(r"^[\d.,:%+-]+$")
_SENTENCE_ENDS = frozenset(".!?…。！？")
# Skipped when looking back from a word for the end of the previous sentence: spaces, quotes, brackets.
_BETWEEN_SENTENCES = frozenset(" \t\r\n\"'“”‘’()[]")

_jieba_lock = threading.Lock()
_jieba_extractor: Any = None


def extract_keywords(text: str, language: str, top_k: int = DEFAULT_TOP_K) -> list[str]:
    """The ``top_k`` most telling words of ``text``, best first; ``[]`` for empty text.

    ``language`` is the transcript's language code ("zh", "en", ...). Any text containing Chinese
    characters is segmented with jieba whatever the code says (engines mislabel mixed speech), unless
    the code names Japanese or Korean, which jieba would cut wrongly."""
    if top_k <= 0 or not text.strip():
        return []
    lang = language.strip().lower()
    if _HAN.search(text) and not lang.startswith(("ja", "ko")):
        return _jieba_keywords(text, top_k)
    return _frequency_keywords(text, top_k)


def _jieba_keywords(text: str, top_k: int) -> list[str]:
    extractor = _jieba()
    # Ask for extra candidates: some are dropped below (numbers, stray single letters).
    candidates: list[str] = extractor.extract_tags(text, topK=top_k * 3, allowPOS=_JIEBA_POS)
    keywords: list[str] = []
    seen: set[str] = set()
    for word in candidates:
        key = word.lower()
        if key in seen or _NUMERIC.match(word) or (word.isascii() and len(word) < 3 and not word.isupper()):
            continue
        seen.add(key)
        keywords.append(word)
        if len(keywords) == top_k:
            break
    return keywords


def _frequency_keywords(text: str, top_k: int) -> list[str]:
    counts: Counter[str] = Counter()
    first_seen: dict[str, int] = {}
    spellings: dict[str, _Spellings] = {}
    for position, match in enumerate(_WORD.finditer(text)):
        word = match.group().replace("’", "'")
        if word.lower().endswith("'s"):
            word = word[:-2]
        key = word.lower()
        if (len(key) < 3 and not _is_acronym(word)) or key in ENGLISH_STOPWORDS:
            continue
        counts[key] += 1
        first_seen.setdefault(key, position)
        spellings.setdefault(key, _Spellings()).add(word, opens_sentence=_opens_sentence(text, match.start()))
    ranked = sorted(counts, key=lambda k: (-counts[k], first_seen[k]))[:top_k]
    return [spellings[k].shown(k) for k in ranked]


def _opens_sentence(text: str, start: int) -> bool:
    """Whether the word at ``start`` is the first of a sentence (or of the text)."""
    i = start - 1
    while i >= 0 and text[i] in _BETWEEN_SENTENCES:
        i -= 1
    return i < 0 or text[i] in _SENTENCE_ENDS


def _is_acronym(word: str) -> bool:
    """``GPU``, ``AI``, ``FunASR``, ``iPhone``: capitals after the first letter."""
    return len(word) >= 2 and any(ch.isupper() for ch in word[1:])


class _Spellings:
    """How one word is written across a text, to decide how to show it: acronyms as written, names
    (capitalised in mid-sentence and never written in lower case) with their capital, anything else in
    lower case. A capital at the start of a sentence says nothing either way."""

    def __init__(self) -> None:
        self.acronyms: Counter[str] = Counter()
        self.names: Counter[str] = Counter()
        self.lower = False

    def add(self, word: str, *, opens_sentence: bool) -> None:
        if _is_acronym(word):
            self.acronyms[word] += 1
        elif word.islower():
            self.lower = True
        elif not opens_sentence:
            self.names[word] += 1

    def shown(self, key: str) -> str:
        if self.acronyms:
            return self.acronyms.most_common(1)[0][0]
        if self.names and not self.lower:
            return self.names.most_common(1)[0][0]
        return key


def _jieba() -> Any:
    """The TF-IDF extractor, built once: dictionary loaded, stopwords extended, quiet."""
    global _jieba_extractor
    if _jieba_extractor is not None:
        return _jieba_extractor
    with _jieba_lock:
        if _jieba_extractor is None:
            import jieba
            import jieba.analyse

            # jieba prints "Building prefix dict..." at DEBUG to its own stderr handler.
            jieba.setLogLevel(logging.WARNING)
            jieba.initialize()
            extractor = jieba.analyse.TFIDF()
            extractor.stop_words = set(extractor.stop_words) | ENGLISH_STOPWORDS | CHINESE_STOPWORDS
            _jieba_extractor = extractor
    return _jieba_extractor
