"""Extractive summary: the sentences most central to the text, in their original order.

TextRank over TF-IDF sentence vectors: sentences are nodes, cosine similarities the edge
weights, and PageRank's stationary scores say which sentences the others "agree" with.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

# A sentence ends at . ! ? followed by space and a capital or digit, or at a blank line.
SENTENCE_END = re.compile(
    r"(?<!\b[Nn]o\.)(?<!\bDr\.)(?<!\bMr\.)(?<!\bMs\.)(?<!\bSt\.)(?<!\bvs\.)(?<!\bRef\.)"
    r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|\n\s*\n|\n(?=[-*•]\s)"
)
MIN_WORDS = 4
DAMPING = 0.85


@dataclass(frozen=True)
class Summary:
    sentences: list[str]

    @property
    def text(self) -> str:
        return " ".join(self.sentences)


def sentences_of(text: str) -> list[str]:
    parts = (" ".join(p.split()) for p in SENTENCE_END.split(text))
    return [p for p in parts if len(p.split()) >= MIN_WORDS]


def summarize(text: str, max_sentences: int = 3) -> Summary:
    sentences = sentences_of(text)
    if len(sentences) <= max_sentences:
        return Summary(sentences)
    try:
        vectors = TfidfVectorizer(stop_words="english", sublinear_tf=True).fit_transform(sentences)
    except ValueError:  # nothing but stop words
        return Summary(sentences[:max_sentences])
    similarity = (vectors @ vectors.T).toarray()
    np.fill_diagonal(similarity, 0.0)
    scores = _pagerank(similarity)
    # Ties (e.g. no overlap at all) go to the earlier sentence: leads tend to say most.
    chosen = sorted(range(len(sentences)), key=lambda i: (-round(float(scores[i]), 9), i))
    return Summary([sentences[i] for i in sorted(chosen[:max_sentences])])


def _pagerank(weights: np.ndarray, iterations: int = 100) -> np.ndarray:
    n = weights.shape[0]
    out = weights.sum(axis=1, keepdims=True)
    # A sentence sharing no word with any other links to every sentence equally.
    transition = np.where(out > 0, weights / np.where(out > 0, out, 1.0), 1.0 / n)
    scores = np.full(n, 1.0 / n)
    for _ in range(iterations):
        updated = (1 - DAMPING) / n + DAMPING * transition.T @ scores
        if np.abs(updated - scores).sum() < 1e-9:
            return updated
        scores = updated
    return scores
