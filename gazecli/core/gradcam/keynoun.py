"""Key-noun step (docs/design.md, "Grad-CAM"): which answer token the Grad-CAM explains.

The key noun is the last word of the first contiguous noun run of the answer ("tennis racket"
-> racket, "the man in red" -> man, "his phone" -> phone). It is found on words (spaCy's POS
tags when spaCy and a model are installed, else a built-in rule) and mapped to the decoder's
tokens through character offsets: the step is the answer token that holds the word's last
character, so a word split into several tokens maps to its last token. Without a noun the
step is the last answer token before EOS.

`--compat` (`word_index_step`): the official mapping, spaCy's word index used directly as the
decoder step, which misaligns for multi-piece words (docs/compat.md).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Sequence

from gazecli.core.errors import SettingsError

KEY_NOUN_METHODS = ("auto", "spacy", "rule")
SPACY_MODEL = "en_core_web_sm"
_NOUN_POS = {"NOUN", "PROPN", "PRON"}  # as the official code

# The built-in rule: a word is a noun unless it is one of these. Determiners, possessives,
# pronoun-like "no answer" words, prepositions, conjunctions, auxiliaries and common verbs of
# looking/holding end a noun run (or are skipped before it starts).
_DETERMINERS = "a an the this that these those some any each every either neither another such what which whose"
_POSSESSIVES = "my your his her its our their mine yours hers ours theirs"
_NO_NOUN = ("nothing none nobody noone nowhere unknown unsure something anything everything someone anyone "
            "everyone somebody anybody everybody it he she they him them we us i you me myself himself herself "
            "itself themselves yes no not maybe")
_PREPOSITIONS = ("in on at of with to from by for near behind under over above below beside besides between "
                 "into onto off out up down inside outside through across around along toward towards against "
                 "about past upon within without next like than via")
_CONJUNCTIONS = "and or but nor so yet while because if then as"
_VERBS = ("is are was were be been being am do does did has have had can could will would should may might "
          "must shall looking looks look looked watching watches watch staring stares stare gazing gazes gaze "
          "reading reads holding holds hold using uses playing plays eating eats drinking drinks talking talks "
          "sitting sits standing stands wearing wears seeing sees see")
_ADVERBS = "very too also just there here left right away"
_STOP = frozenset(" ".join([_DETERMINERS, _POSSESSIVES, _NO_NOUN, _PREPOSITIONS, _CONJUNCTIONS, _VERBS,
                            _ADVERBS]).split())
_WORD = re.compile(r"[A-Za-z0-9]+(?:['\u2019-][A-Za-z0-9]+)*")
_NUMBER = re.compile(r"^\d+(?:st|nd|rd|th)?$|^(?:one|two|three|four|five|six|seven|eight|nine|ten)$")


@dataclass(frozen=True)
class KeyNoun:
    step: int  # index into the answer tokens (0 = the first generated token)
    word: str  # the key noun as it appears in the answer; "" when the fallback was used
    span: tuple[int, int] | None  # character span of `word` in the answer text


def _is_noun_word(word: str) -> bool:
    w = word.lower().replace("\u2019", "'")
    if w.endswith("'s"):
        w = w[:-2]
    return bool(w) and w not in _STOP and not _NUMBER.match(w)


def rule_noun_run(text: str) -> tuple[int, int] | None:
    """Character span of the last word of the first contiguous noun run (built-in rule)."""
    run_end: tuple[int, int] | None = None
    for m in _WORD.finditer(text):
        if _is_noun_word(m.group()):
            possessive = m.group().lower().endswith(("'s", "\u2019s"))
            # "the man's phone" -> phone: a possessive noun continues the run; alone it counts without 's
            run_end = (m.start(), m.end() - 2) if possessive else (m.start(), m.end())
        elif run_end is not None:
            break
    return run_end


@functools.lru_cache(maxsize=1)
def _spacy_pipeline():
    """spaCy's English pipeline, or None when spaCy or its model is not installed."""
    try:
        import spacy
    except ImportError:
        return None
    try:
        return spacy.load(SPACY_MODEL, disable=["ner", "lemmatizer"])
    except (OSError, ValueError, ImportError):
        return None


def spacy_available() -> bool:
    return _spacy_pipeline() is not None


def spacy_noun_run(text: str) -> tuple[int, int] | None:
    """As the official code: scan spaCy tokens, collect NOUN/PROPN/PRON, stop at the first
    other token once a noun was collected; the span of the run's last token."""
    nlp = _spacy_pipeline()
    if nlp is None:
        raise SettingsError(f"--key-noun spacy: spaCy with the {SPACY_MODEL} model is not installed "
                            f"(pip install spacy && python -m spacy download {SPACY_MODEL}), or use --key-noun rule")
    last = None
    for tok in nlp(text):
        if tok.pos_ in _NOUN_POS:
            last = (tok.idx, tok.idx + len(tok.text))
        elif last is not None:
            break
    return last


def key_noun_span(text: str, method: str = "auto") -> tuple[int, int] | None:
    """Character span of the key noun in `text`, or None when the answer has no noun."""
    if method not in KEY_NOUN_METHODS:
        raise SettingsError(f"key-noun method must be one of {', '.join(KEY_NOUN_METHODS)}, got {method!r}")
    if method == "spacy" or (method == "auto" and spacy_available()):
        return spacy_noun_run(text)
    return rule_noun_run(text)


def noun_word_index(text: str, method: str = "auto") -> tuple[int, str, tuple[int, int]] | None:
    """(word index, word, character span) of the key noun among the answer's words (spaCy's
    tokens, punctuation included, or the rule's words), or None without a noun."""
    if method not in KEY_NOUN_METHODS:
        raise SettingsError(f"key-noun method must be one of {', '.join(KEY_NOUN_METHODS)}, got {method!r}")
    if method == "spacy" or (method == "auto" and spacy_available()):
        nlp = _spacy_pipeline()
        if nlp is None:
            spacy_noun_run(text)  # raises the install hint
        words = [(tok.idx, tok.idx + len(tok.text), tok.pos_ in _NOUN_POS) for tok in nlp(text)]
    else:
        words = [(m.start(), m.end(), _is_noun_word(m.group())) for m in _WORD.finditer(text)]
    found = None
    for i, (a, b, noun) in enumerate(words):
        if noun:
            found = (i, text[a:b], (a, b))
        elif found is not None:
            break
    return found


def word_index_step(text: str, n_tokens: int, n_content: int, method: str = "auto") -> KeyNoun:
    """The official key-noun step (`--compat`): the noun's word index taken as the answer-token
    index; without a noun the last token before EOS (the official len(tokens) - 2). A word index
    past the answer tokens also falls back (the official guard; where it let step == len(tokens)
    through and crashed, this falls back too)."""
    fallback = KeyNoun(max(n_content - 1, 0), "", None)
    found = noun_word_index(text, method)
    if found is None or found[0] >= n_tokens:
        return fallback
    return KeyNoun(found[0], found[1], found[2])


def key_noun_step(text: str, token_spans: Sequence[tuple[int, int] | None], n_content: int,
                  method: str = "auto") -> KeyNoun:
    """The answer step to explain.

    `token_spans[i]` is the character span of answer token i in `text` (None for special
    tokens); `n_content` is the number of answer tokens before EOS. The step is the token
    holding the key noun's last character; without a noun (or if no token holds it) the last
    token before EOS (step 0 for an empty answer, i.e. the EOS itself).
    """
    fallback = KeyNoun(max(n_content - 1, 0), "", None)
    span = key_noun_span(text, method)
    if span is None:
        return fallback
    last_char = span[1] - 1
    for i, s in enumerate(token_spans[:n_content]):
        if s is not None and s[0] <= last_char < s[1]:
            return KeyNoun(i, text[span[0]:span[1]], span)
    return fallback


def token_char_spans(tokenizer, token_ids: Sequence[int], special_ids: set[int]) -> tuple[str, list]:
    """(answer text, character span of each token in it; None for special tokens).

    First the tokenizer's own offsets: re-encode the decoded answer and, when that gives back
    the same ids, use its offset mapping. Otherwise (the model emitted a non-canonical
    tokenisation) each token ends where the decoded prefix ending with it ends.
    """
    ids = [int(t) for t in token_ids]
    content = [t for t in ids if t not in special_ids]
    text = tokenizer.decode(content, skip_special_tokens=True).strip()
    spans: list = [None] * len(ids)
    positions = [i for i, t in enumerate(ids) if t not in special_ids]
    if not content:
        return text, spans
    try:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        if list(enc["input_ids"]) == content:
            for i, (a, b) in zip(positions, enc["offset_mapping"]):
                spans[i] = (int(a), int(b))
            return text, spans
    except (NotImplementedError, TypeError, ValueError, KeyError):  # a slow tokenizer: no offsets
        pass
    start = 0
    for k, i in enumerate(positions):
        prefix = tokenizer.decode(content[: k + 1], skip_special_tokens=True).strip()
        end = min(len(prefix), len(text)) if text.startswith(prefix) else _common_prefix(prefix, text)
        end = max(end, start)
        spans[i] = (start, end)
        start = end
    return text, spans


def _common_prefix(a: str, b: str) -> int:
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n
