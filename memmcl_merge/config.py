"""The run configuration: one YAML file describes a whole MEM-MCL run.

Every command (``memmcl experts``, ``memmcl evolve``, ``memmcl curriculum``, ``memmcl run``) reads
the same file and uses its own section, so a run folder is reproducible from that file alone. The
file is validated up front: unknown keys, unknown tasks and out-of-range values are reported with
their path in the file before any work starts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .data import Sampling
from .tasks import GROUPS, TASKS

# Folders of a run; stage outputs live beside them as <output_dir>/<stage>/<group>.
RESERVED_DIRS = ("experts", "evolve", "weak", "recipes", "curriculum", "blend", "eval", "base")


class ConfigError(ValueError):
    """A bad run configuration; the message names the file and the offending key."""


# Settings of how a job runs, not of what it makes: they never make a finished artefact stale.
OPERATIONAL_SETTINGS = frozenset({"checkpoint_minutes"})


def without_operational(settings):
    """``settings`` (JSON) without the :data:`OPERATIONAL_SETTINGS` keys, at any depth."""
    if isinstance(settings, dict):
        return {k: without_operational(v) for k, v in settings.items() if k not in OPERATIONAL_SETTINGS}
    if isinstance(settings, list):
        return [without_operational(v) for v in settings]
    return settings


def changed_settings(recorded: dict | None, current: BaseModel) -> list[str]:
    """Top-level keys where settings recorded beside a finished artefact (JSON) differ from
    ``current``; compared as JSON, so a tuple setting equals its recorded list. A setting added
    since the artefact was made counts as unchanged when it is at its default (the old behaviour);
    operational settings (checkpoint interval) are not compared."""
    import json

    now, was = json.loads(current.model_dump_json()), recorded or {}
    try:  # fill the settings the record predates with their defaults, at any depth
        was = json.loads(type(current).model_validate(was).model_dump_json())
    except ValidationError:
        pass  # a record of settings since removed or renamed: compare as written
    now, was = without_operational(now), without_operational(was)
    return sorted(k for k in set(now) | set(was) if now.get(k) != was.get(k))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class LoraConfig(_Strict):
    r: int = Field(16, ge=1)
    alpha: int = Field(32, ge=1)
    dropout: float = Field(0.05, ge=0.0, lt=1.0)
    target_modules: list[str] | str = "all-linear"


class TrainConfig(_Strict):
    """SFT hyper-parameters (TRL ``SFTConfig`` defaults are GPU-minded; these are CPU-sane)."""

    method: Literal["lora", "full"] = "lora"
    lora: LoraConfig = LoraConfig()
    learning_rate: float = Field(3e-4, gt=0.0, le=1.0)
    batch_size: int = Field(8, ge=1)
    gradient_accumulation_steps: int = Field(1, ge=1)
    epochs: float = Field(1.0, gt=0.0)
    max_examples: int | None = Field(256, ge=1, description="Training examples per task (None: all).")
    max_steps: int | None = Field(None, ge=1)
    max_length: int = Field(256, ge=16)
    num_demos: int = Field(0, ge=0, description="In-context demonstrations in each training prompt.")
    sampling: Sampling = Field(
        "balanced", description="How the max_examples rows are drawn from the train split. balanced: about "
        "max_examples/labels per label. proportional: each label its share of the split. sqrt: shares by "
        "the square root of the label counts, between the two (benchmarks/RESULTS.md, session 8).")
    warmup_ratio: float = Field(0.05, ge=0.0, lt=1.0)
    lr_scheduler: Literal["linear", "cosine", "constant_with_warmup"] = Field(
        "linear", description="After warm-up. A curriculum puts its hardest phase last, where a decaying "
        "schedule leaves the least learning rate.")
    weight_decay: float = Field(0.0, ge=0.0)
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"
    save_dtype: Literal["bfloat16", "float32"] = "bfloat16"
    seed: int = 0
    logging_steps: int = Field(5, ge=1)
    checkpoint_minutes: float = Field(
        10.0, ge=0.0, description="Save a resumable training checkpoint (LoRA or weights, optimiser, "
        "schedule, RNG) every this many minutes of training (0: never). A killed training continues from "
        "the newest one; the result is the same as uninterrupted (tests/test_experts.py).")


class ExpertsConfig(_Strict):
    tasks: list[str] | None = Field(None, description="Tasks to train experts for (default: run.tasks).")
    train: TrainConfig = TrainConfig()
    dev_limit: int = Field(64, ge=1, description="Dev examples scored per expert (recorded in its folder).")


class WeakDataConfig(_Strict):
    """The weak set a candidate is scored on: a small sample of a non-test split, optionally relabelled
    by a teacher (``teacher: experts`` uses each task's own expert; or any model reference)."""

    split: Literal["dev", "train"] = Field(
        "dev", description="train: drawn from the train rows the experts do not train on (an error when "
        "there are none).")
    size: int = Field(16, ge=1, description="Examples per task.")
    seed: int = 0
    sampling: Sampling = Field(
        "proportional", description="proportional: each label its share of the split, so the weak-set "
        "score estimates the split's; balanced: about size/labels per label, which rewards a merge "
        "biased to a minority label (benchmarks/RESULTS.md, session 6).")
    teacher: str | None = None


class SearchConfig(_Strict):
    """The genome and the CMA-ES budget of one search."""

    layer_groups: int = Field(2, ge=1, description="Weight/density anchors over the layers per member; "
                              "2 was the best of 1-4 at 31 evaluations (benchmarks/RESULTS.md, session 26).")
    evolve_density: bool = True
    weight_range: tuple[float, float] = (0.0, 1.5)
    density_range: tuple[float, float] = (0.3, 1.0)
    init_weight: float | None = Field(None, description="Start weight (default 1/sqrt(members)).")
    start_weights: Literal["uniform", "expert_gap"] = Field(
        "uniform", description="uniform: every member at init_weight; expert_gap: each expert's start "
        "weight scaled by its dev gain over the base relative to the members' mean gain.")
    init_density: float = Field(1.0, gt=0.0, le=1.0)
    consensus: bool = False
    sparsify_method: Literal["magnitude", "dare"] = "magnitude"
    popsize: int = Field(6, ge=2)
    sigma: float = Field(0.2, gt=0.0, le=1.0)
    max_evals: int = Field(
        24, ge=1, description="Evaluations, the start point's included. 1: no search, the stage merges its "
        "start point (scored once on the weak sets, for the record). After the curriculum the stage-2 "
        "search was level with its start point on two seeds a side and as soups of three seeds (ahead, "
        "corrected p 0.049, as soups of two; benchmarks/RESULTS.md, sessions 34-36).")
    max_seconds: float | None = Field(None, gt=0.0)

    @model_validator(mode="after")
    def _ranges(self) -> SearchConfig:
        lo, hi = self.weight_range
        if not lo < hi:
            raise ValueError(f"weight_range must be (low, high) with low < high, got {self.weight_range}")
        lo, hi = self.density_range
        if not 0.0 < lo < hi <= 1.0:
            raise ValueError(f"density_range must satisfy 0 < low < high <= 1, got {self.density_range}")
        return self


class FitnessConfig(_Strict):
    classification_metric: Literal["p_gold", "score", "mix", "macro_f1", "macro_mix"] = Field(
        "mix", description="Label tasks: the task's official metric (score), the mean gold-label "
                           "probability per class (p_gold), their mean (mix), macro-F1, or macro-F1 and "
                           "p_gold's mean (macro_mix: a merge that stops giving one label of an accuracy "
                           "task loses that label's share whatever its share of the rows; on the SC stage "
                           "it kept tweet_sentiment's 'neutral' on four weak draws where mix lost it on "
                           "three, session 30, but in stage 2 it bought SC for ABSA and MAST and lost 0.030 "
                           "of the 12-task mean, session 31: not the default; benchmarks/RESULTS.md).")
    task_weights: dict[str, float] = Field(default_factory=dict)
    generation_metric: Literal["score", "partial_f1"] = Field(
        "score", description="Triplet tasks: exact-match micro-F1 (score) or partial credit for aspects, "
                             "opinions and polarities (partial_f1).")
    scale: Literal["none", "best_member"] = Field(
        "none", description="none: the mean of the task values. best_member: each task's value divided by "
                            "the best member's on that task (every member scored once on the weak sets "
                            "before the search, kept in the search's member_scores.json), so the fitness is "
                            "the mean share of the best member's score a candidate keeps and the tasks that "
                            "move most do not outvote the others.")
    cap: float | None = Field(
        None, gt=0.0, description="With scale best_member: each task's share counts up to this value (0.95: "
                                  "the bar's 'kept'), so a task past it cannot buy another task's loss.")

    @model_validator(mode="after")
    def _cap_needs_scale(self):
        if self.cap is not None and self.scale == "none":
            raise ValueError("evolve.fitness.cap caps a share of the best member's score: it needs "
                             "scale: best_member")
        return self


class StageConfig(_Strict):
    """One stage: independent searches, one per group. A member is a task name (its expert) or
    ``<stage>/<group>`` (a model an earlier stage produced)."""

    name: str
    groups: dict[str, list[str]]
    tasks: dict[str, list[str]] | None = Field(
        None, description="Fitness tasks per group (default: the tasks its members were built for).")
    search: SearchConfig | None = None
    fitness: FitnessConfig | None = Field(
        None, description="This stage's fitness, in place of evolve.fitness as a whole (as search is), e.g. "
                          "macro_mix on the SC group at stage 1 and mix at stage 2 (on one weak draw that "
                          "pair lost to mix at both stages, 0.441 against 0.469, as the stage-2 search "
                          "still traded MAST away; benchmarks/RESULTS.md, session 32).")


class EvolveConfig(_Strict):
    search: SearchConfig = SearchConfig()
    weak: WeakDataConfig = WeakDataConfig()
    fitness: FitnessConfig = FitnessConfig()
    stages: list[StageConfig] | None = Field(
        None, description="Default: stage1 = one search per task group, stage2 = the group models.")
    batch_size: int = Field(16, ge=1)
    dtype: Literal["auto", "bfloat16", "float32"] = Field(
        "auto", description="dtype of the live model candidates are scored in. auto: bfloat16 (the dtype "
                            "the winner is saved in) where the device computes it natively, else float32.")
    parallel: Literal["serial", "ray"] = "serial"
    ray_workers: int = Field(2, ge=1)


class DifficultyWeights(_Strict):
    """Weights of the difficulty features (see memmcl_merge/curriculum.py); 0 switches one off."""

    classes: float = Field(1.0, ge=0.0)
    structure: float = Field(1.0, ge=0.0)
    input_length: float = Field(0.5, ge=0.0)
    label_entropy: float = Field(0.5, ge=0.0)
    base_gap: float = Field(1.0, ge=0.0)
    merge_gap: float = Field(
        3.0, ge=0.0, description="3 of the 7 in all: the measured gap to each expert moves more of the rank, so "
        "more of the passes, to the tasks the merge lost; on real data three seeds of three beat the three "
        "at weight 1 (benchmarks/RESULTS.md, sessions 37-38).")


class DistillConfig(_Strict):
    """The curriculum SFT with each task's own expert as teacher (memmcl_merge/distill.py)."""

    weight: float = Field(
        0.0, ge=0.0, le=1.0, description="Share of the loss on a distilled task's answer tokens that is "
        "KL(own expert || model) over the whole vocabulary; the rest is the usual cross-entropy to the gold "
        "answer. 0 (default) trains on the gold answers only; on real data distilling the two tasks the "
        "merge trailed its experts on scored level raw and a little behind under the label-prior correction "
        "(benchmarks/RESULTS.md, session 44).")
    tasks: list[str] | None = Field(
        None, description="The tasks whose rows learn from their own expert (sentiment_ prefix optional); "
        "None: every task. Each named task needs its trained expert.")

    @field_validator("tasks")
    @classmethod
    def _short_task_names(cls, v):
        return None if v is None else [t.removeprefix("sentiment_") for t in v]


class CurriculumConfig(_Strict):
    enabled: bool = True
    weights: DifficultyWeights = DifficultyWeights()
    replay: float = Field(0.25, ge=0.0, le=1.0, description="easy_to_hard: share of each phase replayed from easier phases.")
    order: Literal["easy_to_hard", "mixed_easy_first", "shuffled"] = Field(
        "mixed_easy_first", description="easy_to_hard: one phase per task with replay. mixed_easy_first: no "
        "phases; task k of n (easiest first) joins the mix at mix_span*k/(n-1) of training and its rows are "
        "spread from there to the end. shuffled: the same rows in random order (the control).")
    mix_span: float = Field(0.5, ge=0.0, le=1.0, description="mixed_easy_first: when the hardest task joins.")
    passes: tuple[float, float] = Field(
        (0.5, 1.5), description="Passes over its training rows for the easiest and the hardest task; the "
        "tasks between are spaced linearly by difficulty rank (a fraction of a pass is a seeded sample of "
        "the rows). (0.5, 1.5) moves half the easiest task's steps to the hardest at the same total; on "
        "real data it beat (1, 1) by 0.017 mean, 0.066 on ABSA, on 200 test rows per task (benchmarks/RESULTS.md).")
    task_order: list[str] | None = Field(
        None, description="Pin the order, easiest first, instead of ranking the tasks by difficulty: every task "
        "of the run once (sentiment_ prefix optional). Passes still follow the rank. For controlled runs "
        "and for users who know their tasks better than the meta-data does.")
    start_model: str | None = Field(None, description="Default: the model of the last evolution search.")
    seeds: int = Field(
        1, ge=1, description="Train the curriculum this many times from the same start (training seeds "
        "train.seed, train.seed + 1, ...) and average the models with mergekit's linear method (a model "
        "soup, recipes/final_soup.yml). N times the training time; on real data (one draw of experts) every "
        "soup of 2-6 curricula kept 95% of each expert's score on all 12 tasks where each single run missed "
        "one or two, both soups of 3 seeds met the benchmark's raw bar against the multitask SFT's seed mean, "
        "and 6 added nothing over 3; at merge_gap weight 3 the 3-seed soup led the multitask SFT's soup "
        "by +0.010-0.011 over the label tasks' test rows on two draws, though on the second it won 4 tasks "
        "of 12 and kept 9 (benchmarks/RESULTS.md, sessions 33-41). 3 for a model you ship.")
    distill: DistillConfig = DistillConfig()
    teacher_rows: int = Field(
        0, ge=0, description="Per task, this many train rows no expert trained on, drawn at random without "
        "their labels and answered by the task's own expert, added to its gold training rows (the paper's "
        "teacher-labelled data; memmcl_merge/teacher_rows.py). New inputs beyond the gold budget: a comparator "
        "should get the same rows. Each task needs its trained expert; the answers are kept in "
        "<output_dir>/curriculum/teacher. On real data 128 rows per task at the same steps moved the tasks "
        "toward their experts, down where the model had gone past them (0.561 against 0.582; the multitask SFT on "
        "the same rows lost as much; benchmarks/RESULTS.md, session 46).")
    teacher_tasks: list[str] | None = Field(
        None, description="The tasks that get teacher_rows (sentiment_ prefix optional); None: every task. "
        "Meant for the tasks the model trails its own expert on (picked on the weak rows, never test): on "
        "the others the expert's answers pull the model down to the expert. On real data the two tasks short "
        "on the weak rows (sst5, tweet_irony) at teacher_steps same scored level with no teacher rows over two "
        "seeds (0.580 against 0.579 raw); sst5's raw gain was a label share (benchmarks/RESULTS.md, session 47).")
    teacher_steps: Literal["added", "same"] = Field(
        "added", description="added: passes count over a task's gold and teacher rows alike, so its teacher "
        "rows add steps. same: the task trains as many steps as on its gold rows alone, drawn from both "
        "(new inputs at the same compute; the same steps per task as the run without teacher rows).")
    teacher_pick: float | None = Field(
        None, gt=0, le=1, description="Keep this share of each label task's teacher rows: per answered label "
        "its most confident rows (the expert's probability over the task's labels), in the train split's "
        "label shares, so the kept answers are right more often without leaning toward the expert's "
        "favourite labels. None: every row. Triplet tasks keep every row. Measured without training on "
        "real data: the confident quarter, taken this way, is right on 0.77 of rows against 0.61 for all "
        "(benchmarks/RESULTS.md, session 48); not yet measured as training rows.")
    train: TrainConfig = TrainConfig(learning_rate=1e-4, max_examples=64, num_demos=1)

    @field_validator("task_order", "teacher_tasks")
    @classmethod
    def _short_task_names(cls, v):
        return None if v is None else [t.removeprefix("sentiment_") for t in v]

    @field_validator("passes")
    @classmethod
    def _passes_positive(cls, v):
        if min(v) <= 0:
            raise ValueError(f"curriculum.passes must be > 0, got {list(v)}")
        return v


class BlendConfig(_Strict):
    """The curriculum model blended back toward its start merge (memmcl_merge/blend.py)."""

    enabled: bool = False
    grid: list[float] = Field(
        [0.0, 0.25, 0.5, 0.75, 1.0], description="alphas tried: merge + alpha * (curriculum - merge); the "
        "best on the weak sets (evolve.fitness) is kept. 0 is the merge, 1 the curriculum model.")

    @field_validator("grid")
    @classmethod
    def _grid(cls, v):
        if not v or any(not 0.0 <= a <= 2.0 for a in v):
            raise ValueError(f"blend.grid needs at least one alpha, each in [0, 2], got {v}")
        return sorted(set(v))


class FinalEvalConfig(_Strict):
    """The scores in the run report: base, merged and final model on a held-out split."""

    split: str = "test"
    limit: int | None = Field(64, ge=1, description="Stratified sample per task (None: the whole split).")
    num_demos: int = Field(0, ge=0)
    batch_size: int = Field(16, ge=1)


class SearchPlan(NamedTuple):
    stage: str
    group: str
    members: list[str]  # task names (experts) or "<stage>/<group>" (earlier results)
    tasks: list[str]  # fitness tasks
    search: SearchConfig
    fitness: FitnessConfig

    @property
    def key(self) -> str:
        return f"{self.stage}/{self.group}"


class RunConfig(_Strict):
    """The top of the file."""

    name: str = "default"
    output_dir: Path = Path("runs/default")
    base_model: str = "smollm2-135m-instruct"
    data: str = Field("embedded", description="Folder in the shared layout, 'hf:<id>' or 'embedded'.")
    tasks: list[str] = Field(default_factory=lambda: list(TASKS))
    groups: dict[str, list[str]] | None = Field(
        None, description="Task groups merged in stage 1 (default: SC, ABSA, MAST of the registry).")
    seed: int = 0
    experts: ExpertsConfig = ExpertsConfig()
    evolve: EvolveConfig = EvolveConfig()
    curriculum: CurriculumConfig = CurriculumConfig()
    blend: BlendConfig = BlendConfig()
    final_eval: FinalEvalConfig = FinalEvalConfig()

    @field_validator("tasks")
    @classmethod
    def _known_tasks(cls, v: list[str]) -> list[str]:
        names = [t.removeprefix("sentiment_") for t in v]
        unknown = [t for t in names if t not in TASKS]
        if unknown:
            raise ValueError(f"unknown task(s) {unknown}; known: {', '.join(TASKS)}")
        if not names:
            raise ValueError("at least one task is needed")
        return names

    @model_validator(mode="after")
    def _groups_cover_tasks(self) -> RunConfig:
        groups = self.task_groups()
        listed = [t for ts in groups.values() for t in ts]
        stray = [t for t in listed if t not in self.tasks]
        if stray:
            raise ValueError(f"groups name task(s) {stray} that are not in tasks")
        if self.experts.tasks:
            extra = [t for t in self.experts.tasks if t.removeprefix("sentiment_") not in self.tasks]
            if extra:
                raise ValueError(f"experts.tasks has task(s) {extra} that are not in tasks")
        if self.blend.enabled and not self.curriculum.enabled:
            raise ValueError("blend.enabled needs the curriculum (curriculum.enabled: true): it blends the "
                             "curriculum model back toward the merge")
        pinned = self.curriculum.task_order
        if pinned is not None and sorted(pinned) != sorted(self.tasks):
            raise ValueError(f"curriculum.task_order must list every task of the run once: has {pinned}, "
                             f"tasks are {self.tasks}")
        for name, listed in (("distill.tasks", self.curriculum.distill.tasks),
                             ("teacher_tasks", self.curriculum.teacher_tasks)):
            unknown = [t for t in listed or [] if t not in self.tasks]
            if unknown:
                raise ValueError(f"curriculum.{name} names task(s) {unknown} that are not in tasks")
        for name in ("teacher_tasks", "teacher_pick"):
            if getattr(self.curriculum, name) is not None and not self.curriculum.teacher_rows:
                raise ValueError(f"curriculum.{name} is set but teacher_rows is 0: set teacher_rows "
                                 f"(rows per task) or drop {name}")
        self.plan()  # raises on members that name no task or no earlier stage
        return self

    def plan(self) -> list[SearchPlan]:
        """The evolution plan, one search per (stage, group), checked: members exist, names unique."""
        stages = self.evolve.stages
        if stages is None:
            groups = self.task_groups()
            stages = [StageConfig(name="stage1", groups=groups)]
            if len(groups) > 1:
                stages.append(StageConfig(name="stage2", groups={"unified": [f"stage1/{g}" for g in groups]}))
        seen: dict[str, list[str]] = {}  # "<stage>/<group>" -> the tasks that model serves
        experts = set(self.expert_tasks())
        out: list[SearchPlan] = []
        for st in stages:
            if "/" in st.name or any(k.startswith(f"{st.name}/") for k in seen) or st.name in RESERVED_DIRS:
                raise ValueError(f"stage name {st.name!r} is repeated, contains '/', or is one of the run "
                                 f"folder's own names ({', '.join(RESERVED_DIRS)})")
            for group, members in st.groups.items():
                if not members:
                    raise ValueError(f"stage {st.name} group {group} has no members")
                served: list[str] = []
                for m in members:
                    if m in seen:
                        served += seen[m]
                    elif m.removeprefix("sentiment_") in experts:
                        served.append(m.removeprefix("sentiment_"))
                    else:
                        raise ValueError(f"stage {st.name} group {group}: member {m!r} is neither an expert "
                                         f"task ({', '.join(sorted(experts))}) nor an earlier stage's group")
                fit = (st.tasks or {}).get(group) or served
                unknown = [t for t in fit if t.removeprefix("sentiment_") not in self.tasks]
                if unknown:
                    raise ValueError(f"stage {st.name} group {group}: fitness task(s) {unknown} not in tasks")
                seen[f"{st.name}/{group}"] = [t.removeprefix("sentiment_") for t in fit]
                members = [m if m in seen else m.removeprefix("sentiment_") for m in members]
                out.append(SearchPlan(st.name, group, members, seen[f"{st.name}/{group}"],
                                      st.search or self.evolve.search, st.fitness or self.evolve.fitness))
        return out

    def task_groups(self) -> dict[str, list[str]]:
        if self.groups is not None:
            return {g: [t.removeprefix("sentiment_") for t in ts] for g, ts in self.groups.items() if ts}
        out = {g.lower(): [t for t in self.tasks if TASKS[t].group == g] for g in GROUPS}
        return {g: ts for g, ts in out.items() if ts}

    def expert_tasks(self) -> list[str]:
        return [t.removeprefix("sentiment_") for t in (self.experts.tasks or self.tasks)]

    # Folders of the run, in the order data flows through them.
    @property
    def experts_dir(self) -> Path:
        return self.output_dir / "experts"


def _merged(base: dict, over: dict) -> dict:
    """``over`` on top of ``base``: mappings merge key by key, anything else is replaced."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _read_raw(path: Path, chain: tuple[Path, ...] = ()) -> dict:
    """A run YAML as a mapping, with ``extends: other.yml`` (relative to this file) read first and
    this file's keys merged on top, so a variant of a config states only what it changes."""
    if not path.is_file():
        raise ConfigError(f"{path}: config file not found" + (f" (extended by {chain[-1]})" if chain else ""))
    if path.resolve() in chain:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(map(str, chain))}")
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping at the top, got {type(raw).__name__}")
    parent = raw.pop("extends", None)
    if parent is None:
        return raw
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: extends: expected a file name, got {parent!r}")
    return _merged(_read_raw((path.parent / parent), (*chain, path.resolve())), raw)


def load_config(path: str | Path) -> RunConfig:
    """Read and validate a run YAML (``extends:`` another first); errors name the file and the key path."""
    path = Path(path)
    raw = _read_raw(path)
    try:
        cfg = RunConfig.model_validate(raw)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            where = ".".join(str(p) for p in err["loc"]) or "(top)"
            lines.append(f"  {where}: {err['msg']}")
        raise ConfigError(f"{path}: invalid config\n" + "\n".join(lines)) from None
    # Relative paths are taken from the working directory (as mergekit does for its recipes) and
    # fixed now, so later stages see the same folders even if the process changes directory.
    update = {"output_dir": cfg.output_dir.expanduser().resolve()}
    if cfg.data != "embedded" and not cfg.data.startswith("hf:") and Path(cfg.data).expanduser().is_dir():
        update["data"] = str(Path(cfg.data).expanduser().resolve())
    return cfg.model_copy(update=update)
