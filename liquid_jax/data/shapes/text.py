"""A text-only corpus for the shapes world: templated sentences a small LM can learn.

Facts about the shapes, colours and sizes of the world, spatial relations and their
converses, small arithmetic, counting and orderings (days, months), questions about a
described shape answered from the description, and requests for pictures in the words
of Liquid's prompts. A document is 1-4 sentences; ``text_document(rng)`` draws one from
its generator, so a corpus is deterministic given the seed of each document's generator.

Why the questions and requests: this corpus trains the stand-in for a pretrained LLM.
A real one tells "red" from "blue", can look back in its context for the word that
answers a question, and knows the English of the T2I instructions (a few tokens each,
not dozens of byte pieces). Sentences in which a scene word is used interchangeably
teach none of that; answering "what colour is the circle?" from "a small red circle on
the left" teaches all of it.
"""

from __future__ import annotations

import numpy as np

from liquid_jax.data.formats import CAPTION_PROMPT, T2I_INSTRUCTIONS
from liquid_jax.data.shapes.captions import INVERSE_RELATION, POSITION_PHRASES, RELATION_PHRASES
from liquid_jax.data.shapes.scene import COLORS, SHAPES, SIZES


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


NUMBERS = _words(
    "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen twenty"
)
DAYS = _words("monday tuesday wednesday thursday friday saturday sunday")
MONTHS = _words(
    "january february march april may june july august september october november december"
)
SHAPE_FACTS = {
    "circle": ("a circle is round.", "a circle has no corners."),
    "square": ("a square has four equal sides.", "a square has four corners."),
    "triangle": ("a triangle has three sides.", "a triangle has three corners."),
    "star": ("a star has five points.", "a star has ten corners."),
    "diamond": ("a diamond is a square turned on its corner.", "a diamond has four corners."),
    "cross": ("a cross is made of two bars.", "a cross has twelve corners."),
}
COLOR_FACTS = (
    "the sky is blue.",
    "grass is green.",
    "snow is white.",
    "a banana is yellow.",
    "a tomato is red.",
    "a plum is purple.",
    "an orange is orange.",
    "the sea can look cyan.",
    "red and yellow make orange.",
    "blue and yellow make green.",
    "red and blue make purple.",
)


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _arithmetic(rng) -> str:
    a, b = (int(x) for x in rng.integers(0, 11, size=2))
    if rng.random() < 0.5:
        return f"{NUMBERS[a]} plus {NUMBERS[b]} is {NUMBERS[a + b]}."
    a, b = max(a, b), min(a, b)
    return f"{NUMBERS[a]} minus {NUMBERS[b]} is {NUMBERS[a - b]}."


def _counting(rng) -> str:
    start = int(rng.integers(0, 15))
    n = int(rng.integers(3, 6))
    return ", ".join(NUMBERS[start : start + n]) + "."


def _ordering(rng) -> str:
    names, what = (DAYS, "day") if rng.random() < 0.5 else (MONTHS, "month")
    i = int(rng.integers(len(names)))
    following = names[(i + 1) % len(names)]
    if rng.random() < 0.5:
        return f"after {names[i]} comes {following}."
    return f"the {what} before {following} is {names[i]}."


def _shape_fact(rng) -> str:
    kind = SHAPES[rng.integers(len(SHAPES))]
    return SHAPE_FACTS[kind][rng.integers(2)]


def _size_fact(rng) -> str:
    kind = SHAPES[rng.integers(len(SHAPES))]
    if rng.random() < 0.5:
        return f"a large {kind} is bigger than a small {kind}."
    return f"a small {kind} is smaller than a large {kind}."


def _thing(rng) -> str:
    color = list(COLORS)[rng.integers(len(COLORS))]
    kind = SHAPES[rng.integers(len(SHAPES))]
    return f"{color} {kind}"


def _relation_fact(rng) -> str:
    a, b = _thing(rng), _thing(rng)
    relation = list(RELATION_PHRASES)[rng.integers(len(RELATION_PHRASES))]
    inverse = RELATION_PHRASES[INVERSE_RELATION[relation]]
    return f"if the {a} is {RELATION_PHRASES[relation]} the {b}, the {b} is {inverse} the {a}."


def _scene_sentence(rng) -> str:
    a = _thing(rng)
    size = ("small", "large")[rng.integers(2)]
    position = list(POSITION_PHRASES.values())[rng.integers(len(POSITION_PHRASES))]
    return f"in the picture, {_article(size)} {size} {a} sits {position}."


def _color_fact(rng) -> str:
    return COLOR_FACTS[rng.integers(len(COLOR_FACTS))]


def _described(rng) -> tuple[str, dict]:
    """ "a small red circle on the left" and its attributes."""
    words = {
        "size": list(SIZES)[rng.integers(len(SIZES))],
        "color": list(COLORS)[rng.integers(len(COLORS))],
        "kind": SHAPES[rng.integers(len(SHAPES))],
        "position": list(POSITION_PHRASES.values())[rng.integers(len(POSITION_PHRASES))],
    }
    return f"a {words['size']} {words['color']} {words['kind']} {words['position']}", words


def _question(rng) -> str:
    """A described shape, then a question about it answered from the description."""
    text, w = _described(rng)
    asked = ("color", "kind", "size", "position")[rng.integers(4)]
    question, answer = {
        "color": (f"what colour is the {w['kind']}?", f"it is {w['color']}."),
        "kind": (f"what is {w['color']}?", f"the {w['kind']}."),
        "size": (f"how big is the {w['color']} {w['kind']}?", f"it is {w['size']}."),
        "position": (f"where is the {w['color']} {w['kind']}?", f"{w['position']}."),
    }[asked]
    return f"{text}. {question} {answer}"


def _request(rng) -> str:
    """A picture asked for, or given a caption, in the words of Liquid's prompts."""
    text, _ = _described(rng)
    if rng.random() < 0.5:
        return f"{text}.{T2I_INSTRUCTIONS[rng.integers(len(T2I_INSTRUCTIONS))]}"
    return f"{CAPTION_PROMPT} {text}."


SENTENCE_KINDS = (
    _shape_fact,
    _size_fact,
    _relation_fact,
    _scene_sentence,
    _color_fact,
    _arithmetic,
    _counting,
    _ordering,
    _question,
    _question,
    _request,
)


def text_document(rng: np.random.Generator) -> str:
    """One document of 1-4 sentences, each capitalised."""
    sentences = []
    for _ in range(int(rng.integers(1, 5))):
        sentence = SENTENCE_KINDS[rng.integers(len(SENTENCE_KINDS))](rng)
        sentences.append(sentence[0].upper() + sentence[1:])
    return " ".join(sentences)
