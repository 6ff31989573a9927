"""GazeWorld's automatically generated question-answer pairs: text only.

Every question is about the image; every answer is a word or two (a class name, "person",
"nothing", "outside", a number word, a location word). No box, point or map is ever an
answer: the VQA model trained on these pairs learns *where* things are only because answering
needs it, as a VQA model pretrained on generic data does.

Question types (`QUESTION_TYPES`), all computed from a GazeWorld sidecar record alone, with
no randomness (the same record always gives the same list, in the same order):

- colour      "What is the red object?"                 -> ball | nothing
- count       "How many balls are there?"               -> zero ... eight
- region      "What is at the top left?"                -> a class | person | nothing
- where       "Where is the lamp?"                      -> top left | top | ... | middle | ...
- where-person "Where is the person in the green bounding box?" -> a location word
- next-to     "What is next to the lamp?"               -> a class
- relation    "What is left of the cup?" (right of, above, below) -> a class | nothing
- gaze        "What is the person in the green bounding box looking at?" -> a class | outside |
              nothing; it names one person (`person`, `body_box_xyxy_px`), whose body box is drawn
              in green exactly as `gaze gradcam` draws it (gradcam/prompt.py). A person without a
              body box is asked the plain question, only when the image holds no other person.
- direction   "Which way is the person in the green bounding box looking?" -> left | right | up |
              down (its gaze direction's dominant axis; not in the default curriculum)
- cell        "What is in row two column three?"         -> a class | person | nothing; the image cut
              into a 4 x 4 grid of cells (rows from the top, columns from the left): the finest
              location words, so the densest grounding signal an answer can carry

Questions about a person (where-person, gaze, direction) are asked of that person's prompted
image; the others hold for every prompted image of the scene. Ambiguous questions are left out
rather than answered by a convention the image cannot show: an object whose centre lies within
`MARGIN` of a region border, a relation whose two nearest candidates are almost equally near.

Coordinates: sidecar boxes are `*_xyxy_px` at the record's `size`; regions are thirds of the
normalised image (x to the right, y down).
"""

from __future__ import annotations

import math

from gazecli.core.constants import GAZE_QUESTION, QUESTION_TYPES  # noqa: F401 (QUESTION_TYPES: used from here)
from gazecli.core.gradcam.prompt import BOX_QUESTION, PLAIN_QUESTION

QA_VERSION = "gazeworld-qa-1"
QA_NAMES = {"train": "gazeworld_train_qa.jsonl", "test": "gazeworld_test_qa.jsonl"}
GAZE = GAZE_QUESTION
PERSON_TYPES = ("where-person", GAZE, "direction")  # asked of one person's prompted image

CLASS_NAMES = ("ball", "cup", "book", "plant", "lamp", "clock")  # GazeWorld's object classes (gazeworld.CLASSES)
PLURALS = {"ball": "balls", "cup": "cups", "book": "books", "plant": "plants", "lamp": "lamps", "clock": "clocks"}
COLOURS = {"ball": "red", "cup": "blue", "book": "brown", "plant": "olive", "lamp": "yellow", "clock": "white"}
NUMBERS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten")
PERSON = "person"
NOTHING = "nothing"  # no object there / a person looking at no object
OUTSIDE = "outside"  # a person looking out of the frame
# thirds of the image: (row, column) -> the location words
REGIONS = {(0, 0): "top left", (0, 1): "top", (0, 2): "top right",
           (1, 0): "left", (1, 1): "middle", (1, 2): "right",
           (2, 0): "bottom left", (2, 1): "bottom", (2, 2): "bottom right"}
DIRECTIONS = ("left", "right", "above", "below")
GAZE_DIRECTIONS = ("left", "right", "up", "down")
MARGIN = 0.03  # normalised: a centre this close to a region border has no region
CONE = (0.8, 1.25)  # relation cone: |across| < 0.8 |along| is inside, > 1.25 |along| outside, between: unsure
NEAREST_RATIO = 0.75  # a nearest candidate must be this much nearer than the next one
CELLS = 4  # the cell questions' grid: CELLS x CELLS cells of the image
GAZE_BOX_QUESTION = BOX_QUESTION  # exactly what `gaze gradcam` asks
GAZE_PLAIN_QUESTION = PLAIN_QUESTION
DIRECTION_QUESTION = "Which way is the person in the green bounding box looking?"
WHERE_PERSON_QUESTION = "Where is the person in the green bounding box?"


def region_question(region: str) -> str:
    return "What is in the middle?" if region == "middle" else f"What is at the {region}?"


def cell_question(row: int, column: int) -> str:
    """row, column: 0-based, from the top and from the left."""
    return f"What is in row {NUMBERS[row + 1]} column {NUMBERS[column + 1]}?"


def vocabulary_words() -> list[str]:
    """Every word a question or an answer can use (lower case, in a fixed order), for the
    tokenizer. Includes the words of `gaze gradcam`'s default questions."""
    texts = [GAZE_BOX_QUESTION, GAZE_PLAIN_QUESTION, DIRECTION_QUESTION, WHERE_PERSON_QUESTION,
             "How many are there? What is the object? Where is the? What is next to the? What is of the?",
             *CLASS_NAMES, *PLURALS.values(), *COLOURS.values(), *NUMBERS, PERSON, NOTHING, OUTSIDE,
             *REGIONS.values(), *DIRECTIONS, *GAZE_DIRECTIONS, *(region_question(r) for r in REGIONS.values()),
             *(cell_question(r, c) for r in range(CELLS) for c in range(CELLS))]
    words: list[str] = []
    for text in texts:
        for w in text.lower().replace("?", " ? ").split():
            if w not in words:
                words.append(w)
    return words


# --------------------------------------------------------------------------------------------
# geometry on a sidecar record


def _centre_norm(box, size: float) -> tuple[float, float]:
    return (box[0] + box[2]) / 2 / size, (box[1] + box[3]) / 2 / size


def _third(v: float) -> int | None:
    """0, 1, 2 for the third holding v; None within MARGIN of a border between thirds."""
    for border in (1 / 3, 2 / 3):
        if abs(v - border) < MARGIN:
            return None
    return 0 if v < 1 / 3 else 1 if v < 2 / 3 else 2


def _region(xy) -> str | None:
    r, c = _third(xy[1]), _third(xy[0])
    return None if r is None or c is None else REGIONS[(r, c)]


def _entities(record: dict) -> list[tuple[str, tuple[float, float]]]:
    """(class, centre_xy_norm) of every object, then every person (class "person", head centre)."""
    size = float(record["size"])
    out = [(o["cls"], _centre_norm(o["box_xyxy_px"], size)) for o in record["objects"]]
    out += [(PERSON, _centre_norm(p["head_box_xyxy_px"], size)) for p in record["persons"]]
    return out


def _nearest(anchor, candidates) -> str | None:
    """Class of the unambiguously nearest candidate ((cls, xy) list); None when unsure.
    Candidates of the same class as the nearest never make it ambiguous."""
    if not candidates:
        return None
    ranked = sorted(candidates, key=lambda c: math.dist(anchor, c[1]))
    first = ranked[0]
    d1 = math.dist(anchor, first[1])
    for other in ranked[1:]:
        if other[0] != first[0]:
            if d1 >= NEAREST_RATIO * math.dist(anchor, other[1]):
                return None
            break
    return first[0]


def _in_cone(anchor, xy, direction: str) -> bool | None:
    """True inside the 90-degree cone towards `direction`, False outside, None near its edge."""
    dx, dy = xy[0] - anchor[0], xy[1] - anchor[1]
    along, across = {"left": (-dx, dy), "right": (dx, dy), "above": (-dy, dx), "below": (dy, dx)}[direction]
    if along <= 0:
        return False
    ratio = abs(across) / along
    if ratio < CONE[0]:
        return True
    if ratio > CONE[1]:
        return False
    return None


def _gaze_direction(gaze_dir) -> str | None:
    dx, dy = gaze_dir
    if abs(abs(dx) - abs(dy)) < 0.2:  # near a diagonal: no clear answer
        return None
    if abs(dx) > abs(dy):
        return "left" if dx < 0 else "right"
    return "up" if dy < 0 else "down"


# --------------------------------------------------------------------------------------------
# the pairs


def _pair(kind: str, question: str, answer: str, person: int | None = None, body_box=None) -> dict:
    out = {"type": kind, "question": question, "answer": answer}
    if kind in PERSON_TYPES:
        out["person"] = person
        out["body_box_xyxy_px"] = body_box
    return out


def gazeworld_qa(record: dict) -> list[dict]:
    """Every question-answer pair of one GazeWorld image, from its sidecar record.

    Each pair: {"type", "question", "answer"}; person questions add "person" (index into the
    record's persons) and "body_box_xyxy_px" (the green box drawn for it; None: no box is
    drawn and the plain question is asked).
    """
    objects = record["objects"]
    persons = record["persons"]
    size = float(record["size"])
    entities = _entities(record)
    classes = [o["cls"] for o in objects]
    pairs: list[dict] = []

    for cls in CLASS_NAMES:
        pairs.append(_pair("colour", f"What is the {COLOURS[cls]} object?", cls if cls in classes else NOTHING))
    for cls in CLASS_NAMES:
        pairs.append(_pair("count", f"How many {PLURALS[cls]} are there?", NUMBERS[classes.count(cls)]))

    regions = [_region(xy) for _, xy in entities]
    for region in REGIONS.values():
        unsure = any(r is None and _could_be_in(xy, region) for (_, xy), r in zip(entities, regions))
        if unsure:
            continue
        inside = {cls for (cls, _), r in zip(entities, regions) if r == region}
        if len(inside) <= 1:
            pairs.append(_pair("region", region_question(region), inside.pop() if inside else NOTHING))

    for row in range(CELLS):  # an entity within MARGIN of a cell's border leaves that cell unasked
        for column in range(CELLS):
            lo_x, hi_x, lo_y, hi_y = column / CELLS, (column + 1) / CELLS, row / CELLS, (row + 1) / CELLS
            inside, unsure = set(), False
            for cls, (x, y) in entities:
                if lo_x + MARGIN <= x <= hi_x - MARGIN and lo_y + MARGIN <= y <= hi_y - MARGIN:
                    inside.add(cls)
                elif lo_x - MARGIN <= x <= hi_x + MARGIN and lo_y - MARGIN <= y <= hi_y + MARGIN:
                    unsure = True
            if not unsure and len(inside) <= 1:
                pairs.append(_pair("cell", cell_question(row, column), inside.pop() if inside else NOTHING))

    for cls in CLASS_NAMES:
        if classes.count(cls) != 1:
            continue
        k = classes.index(cls)
        region = regions[k]
        if region is not None:
            pairs.append(_pair("where", f"Where is the {cls}?", region))

    for cls in CLASS_NAMES:  # relations of a class that occurs once (the anchor is unambiguous)
        if classes.count(cls) != 1:
            continue
        k = classes.index(cls)
        anchor = entities[k][1]
        others = [e for j, e in enumerate(entities) if j != k]
        near = _nearest(anchor, others)
        if near is not None:
            pairs.append(_pair("next-to", f"What is next to the {cls}?", near))
        for direction in DIRECTIONS:
            cones = [(_in_cone(anchor, xy, direction), (c, xy)) for c, xy in others]
            inside = [e for flag, e in cones if flag]
            unsure = [e for flag, e in cones if flag is None]
            answer = _nearest(anchor, inside) if inside else NOTHING
            if answer is None:
                continue
            if unsure:  # an object on the cone's edge nearer than the answer makes it ambiguous
                d = min((math.dist(anchor, xy) for _, xy in inside), default=math.inf)
                if any(math.dist(anchor, xy) < d / NEAREST_RATIO for _, xy in unsure):
                    continue
            question = f"What is {direction} the {cls}?" if direction in ("above", "below") else \
                f"What is {direction} of the {cls}?"
            pairs.append(_pair("relation", question, answer))

    for i, p in enumerate(persons):
        box = p["body_box_xyxy_px"]
        if box is None and len(persons) > 1:
            continue  # the plain question would not say which person
        target = p["target_class"]
        answer = OUTSIDE if target == OUTSIDE else NOTHING if target not in CLASS_NAMES else target
        question = GAZE_BOX_QUESTION if box is not None else GAZE_PLAIN_QUESTION
        body = None if box is None else list(box)
        if box is not None:
            region = _region(_centre_norm(p["head_box_xyxy_px"], size))
            if region is not None:
                pairs.append(_pair("where-person", WHERE_PERSON_QUESTION, region, i, body))
        pairs.append(_pair(GAZE, question, answer, i, body))
        direction = _gaze_direction(p["gaze_dir"])
        if box is not None and direction is not None:
            pairs.append(_pair("direction", DIRECTION_QUESTION, direction, i, body))
    return pairs


def _could_be_in(xy, region: str) -> bool:
    """Could an entity whose region is unsure (near a border) lie in `region`?"""
    (r, c), = [k for k, v in REGIONS.items() if v == region]
    lo_x, hi_x = c / 3 - MARGIN, (c + 1) / 3 + MARGIN
    lo_y, hi_y = r / 3 - MARGIN, (r + 1) / 3 + MARGIN
    return lo_x <= xy[0] <= hi_x and lo_y <= xy[1] <= hi_y


def qa_record(record: dict) -> dict:
    """One line of `gazeworld_{split}_qa.jsonl`: the image path and its pairs."""
    return {"path": record["path"], "qa": gazeworld_qa(record)}
