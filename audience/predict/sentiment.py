"""Sentiment of feedback text, offline: -5 (very negative) to +5 (very positive).

VADER (the `vaderSentiment` package, its lexicon ships inside the package) scores each
sentence on its own, and a text's score is the mean of its sentences' scores times 5.
Two things make it read customer service text right:
- sentences are scored separately: VADER looks three words back for a negation, across
  sentence ends too, so in "support never answered. Terrible." the "never" turned
  "Terrible" positive;
- a small service lexicon: what is bad news in a service case ("crashing", "refund",
  "still waiting", "never arrived", "nobody replied") and "support"/"service" as nouns
  (VADER's "support" is the verb, +1.7).
Each text also gets its most influential words and the aspects it talks about.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

import numpy as np
import pandas as pd

# Word valences added to (or replacing) VADER's lexicon; VADER's scale is -4..+4.
SERVICE_LEXICON: dict[str, float] = {
    "support": 0.0, "service": 0.0, "agent": 0.0, "refund": -0.8, "refunded": 0.6,
    "crash": -2.0, "crashes": -2.0, "crashing": -2.0, "crashed": -2.0, "freezes": -1.6,
    "freezing": -1.6, "frozen": -1.2, "buggy": -1.8, "glitch": -1.5, "glitchy": -1.7,
    "leaked": -1.8, "leaking": -1.8, "leaks": -1.8, "defective": -2.2, "faulty": -2.0,
    "late": -1.2, "slow": -1.2, "waiting": -0.8, "overcharged": -2.2, "unanswered": -1.8,
    "unresponsive": -2.0, "undelivered": -2.0, "ignored": -1.6, "unusable": -2.3,
    "please": 0.0, "fast": 1.2, "quick": 1.0, "quickly": 1.0, "early": 0.8, "sorted": 0.8,
    "resolved": 1.4,
}  # fmt: skip
# Phrases rewritten to one word before scoring (VADER scores words, not phrases).
SERVICE_PHRASES: list[tuple[str, str]] = [
    (r"\b(never|not) (answered|replied|responded|got back|called back)\b", "unanswered"),
    (r"\b(nobody|no one|no-one) (answered|replied|responded|called)\b", "unanswered"),
    (r"\bno (reply|response|answer)\b", "unanswered"),
    (r"\b(never|didn't|did not) (arrive|arrived|came|come|show up|showed up)\b", "undelivered"),
    (r"\b(charged twice|double charged|double-charged|charged me twice)\b", "overcharged"),
    (r"\bstill waiting\b", "waiting"),
    (r"\b(\w+ time asking|asked (again|twice|three times))\b", "ignored"),
    (r"\bdoesn't work\b|\bdoes not work\b|\bstopped working\b", "unusable"),
]
# Aspect -> words; a word of 5 letters or more also matches as a prefix ("deliver" matches
# "delivery"), shorter ones only whole.
ASPECTS: dict[str, tuple[str, ...]] = {
    "delivery": ("deliver", "arrive", "arrived", "shipping", "shipped", "package", "packed"),
    "product": ("quality", "broken", "leaked", "size", "defective", "faulty", "works"),
    "service": ("support", "agent", "service", "replied", "answer", "unanswered", "emails"),
    "billing": ("charged", "overcharged", "refund", "invoice", "price", "payment", "paid"),
    "app": ("app", "website", "site", "login", "crash", "crashing", "checkout"),
}
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_WORD = re.compile(r"[a-z']+")


@cache
def _analyzer():  # noqa: ANN202 - VADER has no type hints
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    analyzer = SentimentIntensityAnalyzer()
    analyzer.lexicon.update(SERVICE_LEXICON)
    return analyzer


def _rewrite(text: str) -> str:
    lowered = text.lower()
    for pattern, word in SERVICE_PHRASES:
        lowered = re.sub(pattern, word, lowered)
    return lowered


@dataclass
class TextSentiment:
    score: float  # -5..+5
    label: str  # positive, neutral, negative
    words: list[str]  # most influential words, strongest first
    aspects: list[str]


def label_of(score: float) -> str:
    # VADER's own cut-offs (compound +-0.05) on the -5..+5 scale.
    if score >= 0.25:
        return "positive"
    if score <= -0.25:
        return "negative"
    return "neutral"


def text_sentiment(text: str) -> TextSentiment:
    analyzer = _analyzer()
    rewritten = _rewrite(text)
    sentences = [s for s in _SENTENCE_END.split(rewritten) if s.strip()]
    compounds = [analyzer.polarity_scores(s)["compound"] for s in sentences] or [0.0]
    score = round(float(np.mean(compounds)) * 5, 2)
    tokens = _WORD.findall(rewritten)
    words = {w: analyzer.lexicon[w] for w in tokens if analyzer.lexicon.get(w)}
    strongest = sorted(words, key=lambda w: -abs(words[w]))[:3]
    aspects = [a for a, stems in ASPECTS.items() if any(_mentions(tokens, s) for s in stems)]
    return TextSentiment(score, label_of(score), strongest, aspects)


def _mentions(tokens: list[str], stem: str) -> bool:
    return any(t == stem or (len(stem) >= 5 and t.startswith(stem)) for t in tokens)


def score_texts(texts: pd.Series) -> pd.DataFrame:
    """Sentiment of each text (scored once per distinct text), aligned with `texts`."""
    distinct = texts.dropna().astype(str).unique()
    scored = {t: text_sentiment(t) for t in distinct}
    rows = [scored.get(t) if isinstance(t, str) else None for t in texts.astype(object)]
    return pd.DataFrame(
        {
            "score": [r.score if r else np.nan for r in rows],
            "label": [r.label if r else None for r in rows],
            "words": [r.words if r else [] for r in rows],
            "aspects": [r.aspects if r else [] for r in rows],
        },
        index=texts.index,
    )


def rating_label(rating: float | None) -> str | None:
    """A 1-5 rating as the label it implies (3 is neutral)."""
    if rating is None or np.isnan(rating):
        return None
    return "positive" if rating >= 4 else "negative" if rating <= 2 else "neutral"
