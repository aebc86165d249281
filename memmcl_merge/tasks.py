"""Task registry: one declarative definition per sentiment task.

Everything that must agree between training and evaluation lives here: the prompt, the answer
string, the label set and the metric. The lm-eval YAMLs in ``evals/`` and the SFT datasets of the
experts and the curriculum are all built from these definitions, so a prompt change is made once.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

GROUPS = ("SC", "ABSA", "MAST")
TASK_TYPES = ("classification", "aspect_classification", "stance_classification", "triplet_extraction")
POLARITIES = ("negative", "neutral", "positive")
NO_TRIPLETS = "none"


@dataclass(frozen=True)
class TaskSpec:
    """One sentiment task. ``name`` is the data folder name; lm-eval sees ``sentiment_<name>``."""

    name: str
    group: str
    type: str
    labels: tuple[str, ...]
    instruction: str
    metric: str  # accuracy | macro_f1 | micro_f1
    # Optional extra input shown in the prompt (aspect term, stance target).
    context_field: str | None = None
    context_name: str = ""
    text_name: str = "Text"
    description: str = ""
    extra_fields: tuple[str, ...] = field(default=())

    def __post_init__(self) -> None:
        if self.group not in GROUPS:
            raise ValueError(f"task {self.name}: unknown group {self.group!r}, expected one of {GROUPS}")
        if self.type not in TASK_TYPES:
            raise ValueError(f"task {self.name}: unknown type {self.type!r}, expected one of {TASK_TYPES}")

    # -- naming -------------------------------------------------------------------------------
    @property
    def lm_eval_name(self) -> str:
        return f"sentiment_{self.name}"

    @property
    def is_generative(self) -> bool:
        return self.type == "triplet_extraction"

    @property
    def output_structure(self) -> str:
        """'label' (pick one of the labels) or 'triplets' (a list of (aspect, opinion, polarity))."""
        return "triplets" if self.is_generative else "label"

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def required_fields(self) -> tuple[str, ...]:
        gold = ("triplets",) if self.is_generative else ("label",)
        ctx = (self.context_field,) if self.context_field else ()
        return ("text",) + ctx + gold

    # -- prompts ------------------------------------------------------------------------------
    def prompt(self, doc: Mapping, demos: Sequence[Mapping] = ()) -> str:
        """The model input for ``doc``; ``demos`` are solved examples shown before it (ICL)."""
        shots = [self._query(d) + " " + self.answer(d) for d in demos]
        return "\n\n".join([self.instruction] + shots + [self._query(doc)])

    def _query(self, doc: Mapping) -> str:
        lines = [f"{self.text_name}: {doc['text']}"]
        if self.context_field:
            lines.append(f"{self.context_name}: {doc[self.context_field]}")
        lines.append("Triplets:" if self.is_generative else "Answer:")
        return "\n".join(lines)

    def answer(self, doc: Mapping) -> str:
        """The gold completion (without the leading space the prompt/answer join adds)."""
        if self.is_generative:
            return format_triplets(doc["triplets"])
        return str(doc["label"])

    # -- validation ---------------------------------------------------------------------------
    def check_doc(self, doc: Mapping) -> str | None:
        """Return why ``doc`` is unusable for this task, or None when it is fine."""
        if not isinstance(doc, Mapping):
            return f"expected a JSON object, got {type(doc).__name__}"
        for key in self.required_fields:
            if key not in doc:
                return f"missing field {key!r} (task {self.name} needs {', '.join(self.required_fields)})"
        if not isinstance(doc["text"], str) or not doc["text"].strip():
            return "field 'text' is empty or not a string"
        if self.context_field and (not isinstance(doc[self.context_field], str) or not doc[self.context_field]):
            return f"field {self.context_field!r} is empty or not a string"
        if self.is_generative:
            trips = doc["triplets"]
            if not isinstance(trips, list):
                return "field 'triplets' must be a list of [aspect, opinion, polarity]"
            for t in trips:
                if not (isinstance(t, (list, tuple)) and len(t) == 3 and all(isinstance(x, str) for x in t)):
                    return f"bad triplet {t!r}: expected [aspect, opinion, polarity] strings"
                if t[2] not in self.labels:
                    return f"triplet polarity {t[2]!r} is not one of {list(self.labels)}"
        elif doc["label"] not in self.labels:
            return f"label {doc['label']!r} is not one of {list(self.labels)}"
        return None


# -- triplet answer format ----------------------------------------------------------------------
# "(battery life; good; positive) (screen; dim; negative)", or "none". Parentheses and semicolons
# are rare inside review terms, so the format parses back without ambiguity in practice.
_TRIPLET_RE = re.compile(r"\(([^;()]*);([^;()]*);([^;()]*)\)")


def format_triplets(triplets: Iterable[Sequence[str]]) -> str:
    parts = [f"({a}; {o}; {p})" for a, o, p in triplets]
    return " ".join(parts) if parts else NO_TRIPLETS


def normalise_term(term: str) -> str:
    return " ".join(str(term).split()).lower()


def parse_triplets(text: str) -> list[tuple[str, str, str]]:
    """Parse a generation back into triplets. Malformed pieces are dropped, never raised on:
    a generation is model output, and a half-written triplet simply scores as a miss."""
    out = []
    for a, o, p in _TRIPLET_RE.findall(text or ""):
        a, o, p = normalise_term(a), normalise_term(o), normalise_term(p)
        if a and o and p in POLARITIES:
            out.append((a, o, p))
    return out


# -- meta-data for the curriculum ---------------------------------------------------------------
@dataclass(frozen=True)
class TaskMeta:
    """Meta-data measured on a task's training data (the curriculum's difficulty inputs)."""

    num_classes: int
    output_structure: str
    mean_input_words: float
    label_entropy: float  # bits, of the label (or triplet polarity) distribution
    num_examples: int

    @classmethod
    def measure(cls, spec: TaskSpec, docs: Sequence[Mapping]) -> TaskMeta:
        if not docs:
            raise ValueError(f"task {spec.name}: cannot measure meta-data on no examples")
        if spec.is_generative:
            labels = [t[2] for d in docs for t in d["triplets"]]
        else:
            labels = [d["label"] for d in docs]
        counts = Counter(labels)
        total = sum(counts.values()) or 1
        entropy = -sum(c / total * math.log2(c / total) for c in counts.values() if c)
        words = [len(d["text"].split()) for d in docs]
        return cls(
            num_classes=spec.num_classes,
            output_structure=spec.output_structure,
            mean_input_words=sum(words) / len(words),
            label_entropy=entropy,
            num_examples=len(docs),
        )


# -- the registry -------------------------------------------------------------------------------
def _opts(labels: Sequence[str]) -> str:
    return "Options: " + ", ".join(labels) + "."


def _classification(name, group, labels, what, metric, **kw) -> TaskSpec:
    return TaskSpec(
        name=name, group=group, type=kw.pop("type", "classification"), labels=tuple(labels),
        instruction=f"{what} {_opts(labels)}", metric=metric, **kw,
    )


_P3 = ("negative", "neutral", "positive")
_ASTE_INSTRUCTION = (
    "Extract every (aspect; opinion; polarity) triplet from the review sentence. The aspect and the "
    "opinion are words copied from the sentence; the polarity is negative, neutral or positive. "
    "Write the triplets as (aspect; opinion; polarity), separated by spaces, or none."
)

TASKS: dict[str, TaskSpec] = {
    t.name: t
    for t in [
        _classification("sst2", "SC", ("negative", "positive"),
                        "Classify the sentiment of the movie review.", "accuracy",
                        description="SST-2 sentence polarity"),
        _classification("sst5", "SC", ("very negative", "negative", "neutral", "positive", "very positive"),
                        "Classify the sentiment of the movie review on a five-point scale.", "accuracy",
                        description="SST-5 fine-grained sentence polarity"),
        _classification("tweet_sentiment", "SC", _P3,
                        "Classify the sentiment of the tweet.", "accuracy", text_name="Tweet",
                        description="SemEval-2017 Task 4A tweet polarity"),
        _classification("lap14_atsc", "SC", _P3,
                        "Classify the sentiment expressed towards the aspect in the laptop review.",
                        "accuracy", type="aspect_classification", context_field="aspect",
                        context_name="Aspect", text_name="Review",
                        description="SemEval-2014 laptop aspect-term polarity"),
        _classification("rest14_atsc", "SC", _P3,
                        "Classify the sentiment expressed towards the aspect in the restaurant review.",
                        "accuracy", type="aspect_classification", context_field="aspect",
                        context_name="Aspect", text_name="Review",
                        description="SemEval-2014 restaurant aspect-term polarity"),
        TaskSpec("aste_lap14", "ABSA", "triplet_extraction", _P3, _ASTE_INSTRUCTION, "micro_f1",
                 text_name="Review", description="ASTE-Data-V2 14lap triplets"),
        TaskSpec("aste_res14", "ABSA", "triplet_extraction", _P3, _ASTE_INSTRUCTION, "micro_f1",
                 text_name="Review", description="ASTE-Data-V2 14res triplets"),
        _classification("tweet_emotion", "MAST", ("anger", "joy", "optimism", "sadness"),
                        "Which emotion does the tweet express?", "macro_f1", text_name="Tweet",
                        description="TweetEval emotion"),
        _classification("tweet_irony", "MAST", ("not ironic", "ironic"),
                        "Is the tweet ironic?", "macro_f1", text_name="Tweet",
                        description="TweetEval irony (SemEval-2018 T3A)"),
        _classification("tweet_hate", "MAST", ("not hate", "hate"),
                        "Is the tweet hate speech against immigrants or women?", "macro_f1",
                        text_name="Tweet", description="TweetEval hate (SemEval-2019 HatEval)"),
        _classification("tweet_offensive", "MAST", ("not offensive", "offensive"),
                        "Is the tweet offensive?", "macro_f1", text_name="Tweet",
                        description="TweetEval offensive (OffensEval 2019)"),
        _classification("tweet_stance", "MAST", ("none", "against", "favor"),
                        "What is the stance of the tweet towards the target?", "macro_f1",
                        type="stance_classification", context_field="target", context_name="Target",
                        text_name="Tweet", description="TweetEval stance (SemEval-2016 T6)"),
    ]
}


def get_task(name: str) -> TaskSpec:
    """Look a task up by its short name or its lm-eval name (``sentiment_<name>``)."""
    key = name.removeprefix("sentiment_")
    if key not in TASKS:
        raise KeyError(f"unknown task {name!r}; known tasks: {', '.join(TASKS)}")
    return TASKS[key]


def tasks_in_group(group: str) -> list[TaskSpec]:
    if group not in GROUPS:
        raise KeyError(f"unknown task group {group!r}; known groups: {', '.join(GROUPS)}")
    return [t for t in TASKS.values() if t.group == group]
