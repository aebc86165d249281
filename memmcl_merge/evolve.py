"""Multi-stage evolutionary merging: CMA-ES over the ``memmcl`` merge parameters, scored on weak data.

One *search* evolves the merge of some member models (experts, or the group models of an earlier
stage) into one model, with fitness = lm-eval scores on a weak set of the tasks it serves. A *stage*
is a set of independent searches (stage 1: one per task group); stages run in order, and a later
stage's members may be earlier searches' results. The default plan is MEM-MCL's two stages:
experts -> group models -> one model.

The hot loop keeps one live model in memory, the members' task vectors computed once, and lm-eval's
task objects built once; a candidate is merged in place with the same arithmetic as the mergekit
method and scored without touching the disk. Every finished evaluation is appended to a journal and
the optimiser is checkpointed after every ask, so a killed run continues where it stopped.
"""

from __future__ import annotations

import json
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

from .io import replace_dir, write_json, write_text

log = logging.getLogger("memmcl.evolve")

WORST_FITNESS = -1.0  # fitness of a failed / NaN candidate: below any real score (scores are in [0, 1])
SCALE_FLOOR = 0.05  # smallest divisor of fitness.scale: best_member
BLENDED_WITH_P_GOLD = {"mix": "score", "macro_mix": "macro_f1"}  # classification_metric -> the metric averaged with p_gold


# -- genome ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class GenomeSpace:
    """Maps a point of [0, 1]^dim (what CMA-ES searches) to merge parameters.

    Genes: per member, per layer group, a weight (and a density when ``evolve_density``); layer
    groups become mergekit per-layer lists (``weight: [w0, w1, w2]``), which mergekit interpolates
    over the layers. One layer group gives scalars.
    """

    members: tuple[str, ...]
    layer_groups: int = 1
    evolve_density: bool = True
    weight_range: tuple[float, float] = (0.0, 1.5)
    density_range: tuple[float, float] = (0.2, 1.0)
    fixed_density: float = 1.0

    @property
    def genes_per_member(self) -> int:
        return self.layer_groups * (2 if self.evolve_density else 1)

    @property
    def dim(self) -> int:
        return len(self.members) * self.genes_per_member

    def decode(self, x: Sequence[float]) -> dict[str, dict[str, float | list[float]]]:
        if len(x) != self.dim:
            raise ValueError(f"genome has {len(x)} genes, expected {self.dim}")
        g, out = self.layer_groups, {}
        for m, name in enumerate(self.members):
            genes = [min(1.0, max(0.0, float(v))) for v in x[m * self.genes_per_member:(m + 1) * self.genes_per_member]]
            wl, wh = self.weight_range
            weights = [wl + v * (wh - wl) for v in genes[:g]]
            if self.evolve_density:
                dl, dh = self.density_range
                dens = [dl + v * (dh - dl) for v in genes[g:]]
            else:
                dens = [self.fixed_density] * g
            out[name] = {"weight": _scalar_or_list(weights), "density": _scalar_or_list(dens)}
        return out

    def encode(self, weight: float | Sequence[float], density: float) -> list[float]:
        """The genome where every member has this weight (or its own, one per member) and density
        (the starting point)."""
        weights = [weight] * len(self.members) if isinstance(weight, (int, float)) else list(weight)
        if len(weights) != len(self.members):
            raise ValueError(f"{len(weights)} start weights for {len(self.members)} members")
        wl, wh = self.weight_range
        dl, dh = self.density_range
        genome = []
        for w in weights:
            genes = [(w - wl) / (wh - wl)] * self.layer_groups
            if self.evolve_density:
                genes += [(density - dl) / (dh - dl)] * self.layer_groups
            genome += [min(1.0, max(0.0, v)) for v in genes]
        return genome


def _scalar_or_list(values: list[float]) -> float | list[float]:
    values = [round(v, 6) for v in values]
    return values[0] if len(values) == 1 else values


# -- fitness --------------------------------------------------------------------------------------
@dataclass(frozen=True)
class FitnessSpec:
    """How per-task weak-set scores become one number to maximise.

    ``classification_metric`` is the per-task metric used for label tasks: ``p_gold`` (mean gold-label
    probability per class; smooth, so CMA-ES sees small improvements that accuracy hides), ``score``
    (the official metric), ``mix`` (their mean), ``macro_f1``, or ``macro_mix`` (the mean of macro-F1
    and ``p_gold``: on accuracy tasks a merge that stops giving one label loses that label's share of
    macro-F1 whatever its share of the rows; on macro-F1 tasks the same as ``mix``).
    ``generation_metric`` is the one of generation (triplet) tasks: ``score`` (exact-match micro-F1) or
    ``partial_f1`` (partial credit for aspects, opinions and polarities; lm_tasks.partial_f1).
    """

    classification_metric: str = "mix"  # the config's default (config.FitnessConfig)
    task_weights: Mapping[str, float] = field(default_factory=dict)
    generation_metric: str = "score"
    task_scale: Mapping[str, float] = field(default_factory=dict)  # divisors (scaled_to)
    cap: float | None = None  # largest counted value of a scaled task

    @classmethod
    def from_config(cls, fitness) -> FitnessSpec:
        """From a run's ``evolve.fitness`` section (``scale`` is applied by :meth:`scaled_to`)."""
        return cls(fitness.classification_metric, dict(fitness.task_weights), fitness.generation_metric,
                   cap=fitness.cap)

    def scaled_to(self, member_scores: Mapping[str, Mapping[str, Mapping[str, float]]]) -> FitnessSpec:
        """The same fitness with each task's value divided by the best member's value on it
        (``member_scores``: member -> task -> metrics). A floor keeps a task no member can do
        (value near 0) from turning noise into the whole fitness."""
        tasks = {t for scores in member_scores.values() for t in scores}
        best = {t: max(self.task_value(t, s[t]) for s in member_scores.values() if t in s) for t in tasks}
        if not all(math.isfinite(v) for v in best.values()):
            raise ValueError(f"fitness scale: a member scored a non-finite value on the weak sets: {best}")
        return replace(self, task_scale={t: max(v, SCALE_FLOOR) for t, v in best.items()})

    def task_value(self, task: str, row: Mapping[str, float]) -> float:
        if "p_gold" not in row:  # generation task
            return row[self.generation_metric]
        blended = BLENDED_WITH_P_GOLD.get(self.classification_metric)
        name = blended or self.classification_metric
        if name not in row:
            raise ValueError(f"fitness classification_metric {self.classification_metric!r} needs {name!r}, "
                             f"which task {task!r} does not report (it reports {sorted(row)})")
        return 0.5 * (row[name] + row["p_gold"]) if blended else row[name]

    def __call__(self, scores: Mapping[str, Mapping[str, float]]) -> float:
        total = weight_sum = 0.0
        for task, row in scores.items():
            w = float(self.task_weights.get(task, 1.0))
            value = self.task_value(task, row)
            if task in self.task_scale:
                value /= self.task_scale[task]
                value = value if self.cap is None else min(value, self.cap)
            total += w * value
            weight_sum += w
        value = total / weight_sum if weight_sum else WORST_FITNESS
        return value if math.isfinite(value) else WORST_FITNESS


# -- journal and checkpoint -----------------------------------------------------------------------
class Journal:
    """Append-only JSONL of finished evaluations; the source of truth for resuming and reporting."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.records: list[dict] = []
        self._by_key: dict[tuple[int, int], dict] = {}
        if self.path.is_file():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    self._keep(json.loads(line))
                except json.JSONDecodeError:
                    log.warning("%s: skipping a torn last line (killed mid-write)", self.path)

    def _keep(self, record: dict) -> None:
        self.records.append(record)
        self._by_key[(record["generation"], record["index"])] = record

    def find(self, generation: int, index: int) -> dict | None:
        return self._by_key.get((generation, index))

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")
            fh.flush()
        self._keep(record)

    def best(self) -> dict | None:
        ok = [r for r in self.records if r["status"] == "ok"]
        return max(ok, key=lambda r: r["fitness"]) if ok else None


def _save_checkpoint(path: Path, es, generation: int, pending: list[list[float]]) -> None:
    import numpy as np

    blob = pickle.dumps({"es": es, "generation": generation, "pending": pending,
                         "np_random": np.random.get_state()})
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)


def _load_checkpoint(path: Path) -> dict | None:
    if not path.is_file():
        return None
    import numpy as np

    state = pickle.loads(path.read_bytes())
    np.random.set_state(state["np_random"])  # cma draws from numpy's global generator
    return state


# -- the search -----------------------------------------------------------------------------------
@dataclass
class SearchBudget:
    popsize: int = 6
    sigma: float = 0.2
    max_evals: int = 24
    max_seconds: float | None = None
    seed: int = 0


@dataclass
class SearchResult:
    best_genome: list[float]
    best_params: dict
    best_fitness: float
    best_scores: dict
    start_fitness: float | None
    evaluations: int
    seconds: float
    journal: Path


class Interrupted(RuntimeError):
    """Ctrl-C during a search; the journal and checkpoint are consistent, rerun to continue."""


def run_search(
    space: GenomeSpace,
    evaluate: Callable[[dict], dict],
    fitness: FitnessSpec,
    budget: SearchBudget,
    workdir: Path,
    x0: Sequence[float],
    evaluate_many: Callable[[list[dict]], list[dict | Exception]] | None = None,
    progress: Callable[[str], None] | None = print,
) -> SearchResult:
    """CMA-ES over ``space``; ``evaluate(params) -> {task: {metric: value}}``.

    The starting point ``x0`` is evaluated first (generation -1), so the result can never be worse
    than where the search started. ``evaluate_many`` (for example Ray workers) scores a whole
    population at once; otherwise candidates are scored one by one. Resumes from ``workdir``.
    """
    import cma

    workdir.mkdir(parents=True, exist_ok=True)
    journal = Journal(workdir / "journal.jsonl")
    ckpt_path = workdir / "cma_state.pkl"
    t_start = time.perf_counter()
    spent_before = sum(r.get("seconds_total", 0.0) for r in journal.records)

    def score(generation: int, population: list[list[float]]) -> list[float]:
        for i, x in enumerate(population):
            _check_replayed(journal, generation, i, x)
        todo = [(i, x) for i, x in enumerate(population) if journal.find(generation, i) is None]
        params = [space.decode(x) for _, x in todo]
        if todo:
            if evaluate_many is not None:
                outcomes = evaluate_many(params)
            else:
                outcomes = []
                for p in params:
                    outcomes.append(_safe(evaluate, p))
            for (i, x), p, out in zip(todo, params, outcomes):
                journal.append(_record(generation, i, x, p, out, fitness))
        return [journal.find(generation, i)["fitness"] for i in range(len(population))]

    searching = budget.max_evals > 1  # 1: no search, the start point (scored for the record) is the winner
    with _sigint_as_interrupt():
        state = _load_checkpoint(ckpt_path) if searching else None
        if state is None:
            start = score(-1, [list(x0)])[0]
            if searching:
                opts = {"seed": budget.seed + 1, "popsize": budget.popsize, "bounds": [0.0, 1.0],
                        "verbose": -9, "maxfevals": budget.max_evals - 1}
                es = cma.CMAEvolutionStrategy(list(x0), budget.sigma, opts)
                generation, pending = 0, es.ask()[:budget.max_evals - 1]
                _save_checkpoint(ckpt_path, es, generation, [list(map(float, x)) for x in pending])
        else:
            es, generation, pending = state["es"], state["generation"], state["pending"]
            start_rec = journal.find(-1, 0)
            start = start_rec["fitness"] if start_rec else None
            if progress:
                progress(f"resuming at generation {generation} ({len(journal.records)} evaluations done)")
        while searching:
            fits = score(generation, [list(x) for x in pending])
            evals = len(journal.records)
            partial = len(pending) < budget.popsize  # the budget's last, cut-short generation
            if not partial:
                es.tell([list(x) for x in pending], [-f for f in fits])  # CMA-ES minimises
            elapsed = spent_before + (time.perf_counter() - t_start)
            best = journal.best()
            if progress:
                left = _time_left(evals, budget.max_evals, elapsed)
                progress(f"gen {generation:3d} | best {best['fitness']:.4f} | mean {sum(fits) / len(fits):.4f} "
                         f"| evals {evals}/{budget.max_evals} | {elapsed:6.0f} s | ~{left} left")
            out_of_time = budget.max_seconds is not None and elapsed >= budget.max_seconds
            if partial or evals >= budget.max_evals or out_of_time or es.stop():
                break
            generation += 1
            # never more evaluations than the budget: the last generation may be cut short
            pending = [list(map(float, x)) for x in es.ask()][:budget.max_evals - evals]
            _save_checkpoint(ckpt_path, es, generation, pending)
    best = journal.best() if searching else journal.find(-1, 0)
    if best is None or best["status"] != "ok":
        what = "every candidate" if searching else "the start point (max_evals 1: no search)"
        raise RuntimeError(f"{what} failed in {workdir}; see {journal.path}")
    result = SearchResult(best_genome=best["genome"], best_params=best["params"], best_fitness=best["fitness"],
                          best_scores=best["scores"], start_fitness=start, evaluations=len(journal.records),
                          seconds=spent_before + time.perf_counter() - t_start, journal=journal.path)
    write_json(workdir / "result.json", {k: (str(v) if isinstance(v, Path) else v)
                                         for k, v in result.__dict__.items()})
    return result


def _check_replayed(journal: Journal, generation: int, index: int, x: Sequence[float]) -> None:
    """A journal record stands in for a candidate only if it holds that candidate's genome: a search
    resumed (or replayed from a recorded journal) under other settings or other members would otherwise
    take scores measured on other merges."""
    rec = journal.find(generation, index)
    if rec is not None and (len(rec["genome"]) != len(x)
                            or any(abs(a - float(b)) > 1e-9 for a, b in zip(rec["genome"], x))):
        raise ValueError(f"{journal.path}: candidate {generation}.{index} was recorded with another genome than "
                         "this search proposes (other settings, members or start point); restore them, or delete "
                         f"{journal.path.parent} to start the search again")


def _safe(evaluate, params) -> dict | Exception:
    try:
        return evaluate(params)
    except (KeyboardInterrupt, Interrupted):
        raise
    except Exception as exc:  # noqa: BLE001 - a failed candidate must not end the run
        return exc


def _record(generation, index, x, params, outcome, fitness: FitnessSpec) -> dict:
    rec = {"generation": generation, "index": index, "genome": [float(v) for v in x], "params": params}
    if isinstance(outcome, Exception):
        log.warning("candidate %d.%d failed (%s: %s); given the worst fitness", generation, index,
                    type(outcome).__name__, outcome)
        return {**rec, "status": "failed", "error": f"{type(outcome).__name__}: {outcome}",
                "fitness": WORST_FITNESS, "scores": {}, "seconds_total": 0.0}
    scores = outcome["scores"]
    value = fitness(scores)
    status = "ok" if value > WORST_FITNESS else "failed"
    if status == "failed":
        log.warning("candidate %d.%d scored a non-finite fitness; given the worst fitness", generation, index)
    return {**rec, "status": status, "fitness": value, "scores": scores,
            "seconds_merge": outcome.get("seconds_merge", 0.0), "seconds_eval": outcome.get("seconds_eval", 0.0),
            "seconds_total": outcome.get("seconds_merge", 0.0) + outcome.get("seconds_eval", 0.0)}


def _time_left(evals: int, max_evals: int, elapsed: float) -> str:
    if evals <= 0:
        return "?"
    secs = elapsed / evals * max(0, max_evals - evals)
    return f"{secs / 60:.1f} min" if secs >= 60 else f"{secs:.0f} s"


class _sigint_as_interrupt:
    """Ctrl-C ends the search with :class:`Interrupted` and a message; every evaluation that finished
    is already in the journal (appended and flushed one by one), so nothing but the candidate in
    flight is lost."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is KeyboardInterrupt:
            raise Interrupted("interrupted: the journal is consistent; run the same command again to resume") from exc
        return False


# -- plots ----------------------------------------------------------------------------------------
def plot_fitness(journals: Mapping[str, Path], out: Path, title: str = "fitness over evaluations") -> Path:
    """One line per search (best-so-far) plus its candidates as dots."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for label, path in journals.items():
        recs = Journal(path).records
        ys = [r["fitness"] for r in recs]
        best, curve = -math.inf, []
        for y in ys:
            best = max(best, y)
            curve.append(best)
        xs = list(range(1, len(ys) + 1))
        line, = ax.plot(xs, curve, label=f"{label} (best so far)")
        ax.scatter(xs, [y if y > WORST_FITNESS else float("nan") for y in ys], s=8, color=line.get_color(), alpha=0.4)
    ax.set_xlabel("evaluation")
    ax.set_ylabel("weak-set fitness")
    ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(".tmp-" + out.name)
    fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    tmp.replace(out)
    return out


# -- weak data ------------------------------------------------------------------------------------
def build_weak_sets(cfg, tasks: Sequence[str], progress=print) -> Path:
    """Write ``<output_dir>/weak/<task>/weak.jsonl``: a seeded, label-stratified sample of a non-test
    split, relabelled by a teacher when configured. Written once; reused on resume."""
    from .config import changed_settings
    from .data import load_docs, sample_docs, write_jsonl
    from .io import read_json
    from .tasks import get_task

    weak = cfg.evolve.weak
    root = cfg.output_dir / "weak"
    # the weak sets on disk must be the ones these settings draw (resuming after an edit)
    settings = root / "settings.json"
    recorded = read_json(settings) if settings.is_file() else None
    if recorded is None and any(root.glob("*/weak.jsonl")):
        # drawn before the settings were recorded, when every weak set was label-balanced
        recorded = {**weak.model_dump(mode="json"), "sampling": "balanced"}
    if recorded is not None:
        changed = changed_settings(recorded, weak)
        if changed:
            raise ValueError(f"evolve.weak: the weak sets in {root} were drawn with other settings (differs "
                             f"in: {', '.join(changed)}); delete that folder (and the searches scored on it, "
                             f"{cfg.output_dir / 'evolve'}) to draw them again")
    write_json(settings, weak.model_dump(mode="json"))
    for task in tasks:
        path = root / task / "weak.jsonl"
        if path.is_file():
            continue
        if weak.split == "train":
            docs = sample_docs(get_task(task), unseen_train_docs(cfg, task), weak.size, weak.seed, weak.sampling)
        else:
            docs = load_docs(task, weak.split, cfg.data, limit=weak.size, seed=weak.seed, sampling=weak.sampling)
        if weak.teacher:
            docs = teacher_labels(cfg, task, docs, root)
            if progress:
                progress(f"weak set {task}: {len(docs)} examples of {weak.split}, labelled by {weak.teacher}")
        write_jsonl(path, docs)
    return root


def unseen_train_docs(cfg, task: str) -> list[dict]:
    """The task's ``train`` docs the experts (and the curriculum, which reuses their rows) do not
    train on: a weak set drawn from ``train`` must not score merges on rows the experts learnt."""
    from .data import load_docs
    from .experts import task_train_docs
    from .tasks import get_task

    def key(doc):
        return json.dumps(doc, sort_keys=True, ensure_ascii=False)

    spec, train = get_task(task), cfg.experts.train
    pool = load_docs(spec, "train", cfg.data)
    seen = {key(d) for d in task_train_docs(spec, pool, train)}
    unseen = [d for d in pool if key(d) not in seen]
    if not unseen:
        raise ValueError(f"evolve.weak.split: train leaves no rows of {task} the experts do not train on "
                         f"({len(pool)} rows, experts.train.max_examples {train.max_examples}); use split: dev")
    return unseen


def teacher_labels(cfg, task: str, docs: list[dict], root: Path, teacher: str | None = None,
                   with_probs: bool = False):
    """Replace the gold labels of ``docs`` by a teacher's predictions (greedy / argmax); the teacher is
    ``evolve.weak.teacher`` unless given (``experts``: the task's own expert; or a model reference).
    With ``with_probs`` also the teacher's label probabilities per doc from the same pass (``None`` for
    a triplet task): ``(docs, probs)``."""
    from .data import write_jsonl
    from .evaluation import Evaluator
    from .models import load_model_and_tokenizer, resolve_model
    from .tasks import get_task

    spec = get_task(task)
    teacher = teacher or cfg.evolve.weak.teacher
    ref = str(cfg.experts_dir / task) if teacher == "experts" else resolve_model(teacher)
    model, tok = load_model_and_tokenizer(ref)
    scratch = root / ".teacher"  # a data folder of its own: <folder>/<task>/<split>.jsonl
    write_jsonl(scratch / task / "weak.jsonl", docs)
    ev = Evaluator([spec], data=str(scratch), split="weak", batch_size=cfg.evolve.batch_size)
    preds, probs = ev.predict(ev.wrap(model, tok), with_probs=True)
    out = []
    for doc, pred in zip(docs, preds[task]):
        doc = dict(doc)
        if spec.is_generative:
            doc["triplets"] = [list(t) for t in pred]
        else:
            doc["label"] = pred
        out.append(doc)
    return (out, probs[task]) if with_probs else out


# -- stages ---------------------------------------------------------------------------------------
MARKER = "memmcl_search.json"


def stage_dir(cfg, key: str) -> Path:
    return cfg.output_dir / "evolve" / key


def member_path(cfg, member: str) -> Path:
    """A member's model folder: an expert (task name) or an earlier search's model
    (``<output_dir>/<stage>/<group>``, the layout the shipped recipes in ``recipes/`` expect)."""
    if "/" in member:
        return cfg.output_dir / member
    return cfg.experts_dir / member


def live_dtype(name: str):
    """The torch dtype of the live model: ``auto`` picks bfloat16 on a GPU or a CPU with native bf16
    matmuls (avx512_bf16 / AMX; ~1.7x faster forward passes than float32 on this project's 2-core
    reference machine), float32 elsewhere (emulated bf16 is slower). The environment variable
    ``MEMMCL_AUTO_DTYPE`` (``float32`` or ``bfloat16``) fixes what ``auto`` means, so one series of
    scores can go on across machines whose CPUs differ (the scores move with the dtype)."""
    import os

    import torch

    if name == "auto" and (fixed := os.environ.get("MEMMCL_AUTO_DTYPE")):
        if fixed not in ("float32", "bfloat16"):
            raise ValueError(f"MEMMCL_AUTO_DTYPE={fixed!r}: expected float32 or bfloat16")
        name = fixed
    if name != "auto":
        return getattr(torch, name)
    if torch.cuda.is_available():
        return torch.bfloat16
    try:
        native = torch.ops.mkldnn._is_mkldnn_bf16_supported()
    except (AttributeError, RuntimeError):
        native = False
    return torch.bfloat16 if native else torch.float32


class SearchRunner:
    """Everything one search keeps in memory: the live model, the task vectors, the task objects."""

    def __init__(self, cfg, plan, base_path: str, weak_root: Path):

        from .evaluation import Evaluator
        from .merge_methods.inprocess import MemmclMerger
        from .models import load_model_and_tokenizer
        from .tasks import get_task

        self.cfg, self.plan = cfg, plan
        paths = {m: member_path(cfg, m) for m in plan.members}
        missing = [f"{m} ({p})" for m, p in paths.items() if not (p / "config.json").is_file()]
        if missing:
            raise FileNotFoundError(f"{plan.key}: member model(s) missing: {', '.join(missing)}; "
                                    "train the experts (memmcl experts) / run the earlier stage first")
        self.member_paths = paths
        self.base_path = base_path
        self.merger = MemmclMerger.from_paths(base_path, paths)
        self.model, self.tok = load_model_and_tokenizer(base_path, dtype=live_dtype(cfg.evolve.dtype))
        self.evaluator = Evaluator([get_task(t) for t in plan.tasks], data=str(weak_root), split="weak",
                                   batch_size=cfg.evolve.batch_size)
        self.lm = self.evaluator.wrap(self.model, self.tok)
        s = plan.search
        self.globals = {"consensus": s.consensus, "sparsify_method": s.sparsify_method, "seed": cfg.seed}

    def full_params(self, decoded: Mapping) -> dict:
        """Genome values -> memmcl params. Embeddings and lm_head stay dense (density 1): sparsifying
        the 28M-entry embedding is the slowest part of a merge and its rows are mostly untouched
        by SFT anyway; their weight is the first layer group's."""
        experts = {}
        for m, v in decoded.items():
            p = dict(v)
            if p.get("density", 1.0) != 1.0:
                p["density"] = [{"filter": "embed_tokens", "value": 1.0}, {"filter": "lm_head", "value": 1.0},
                                {"value": p["density"]}]
            experts[m] = p
        return {**self.globals, "experts": experts}

    def apply(self, decoded: Mapping) -> float:
        """Merge in place into the live model; returns seconds spent."""
        t0 = time.perf_counter()
        load_weights(self.model, self.merger.merge(self.full_params(decoded)))
        return time.perf_counter() - t0

    def score_member(self, member: str) -> dict:
        """One member as trained (the base plus its whole task vector) on the weak sets."""
        deltas = self.merger.deltas[member]
        load_weights(self.model, {n: b.to(deltas[n].dtype) + deltas[n] for n, b in self.merger.base.items()
                                  if n in deltas})
        with quiet_progress_bars():
            return self.evaluator.evaluate(self.lm)

    def member_scores(self, path: Path, progress=None) -> dict:
        """Every member's weak-set scores, measured once and kept in ``path`` (a resumed search must
        divide by the same numbers its journal was scored with)."""
        from .io import read_json

        if path.is_file():
            return read_json(path)
        scores = {}
        for m in self.plan.members:
            scores[m] = self.score_member(m)
            if progress:
                progress(f"member {m} on the weak sets:\n" + format_weak_scores(scores[m]))
        write_json(path, scores)
        return scores

    def __call__(self, decoded: Mapping) -> dict:
        seconds_merge = self.apply(decoded)
        t0 = time.perf_counter()
        with quiet_progress_bars():  # one progress line per generation instead of lm-eval's bars
            scores = self.evaluator.evaluate(self.lm)
        return {"scores": scores, "seconds_merge": seconds_merge, "seconds_eval": time.perf_counter() - t0}


def load_weights(model, tensors: Mapping) -> None:
    """Copy merged tensors into the live model in place (no reload: the lm-eval wrapper keeps it)."""
    import torch

    with torch.no_grad():
        own = model.state_dict()
        for name, tensor in tensors.items():
            own[name].copy_(tensor)


class quiet_progress_bars:
    def __enter__(self):
        self._old = os.environ.get("TQDM_DISABLE")
        os.environ["TQDM_DISABLE"] = "1"

    def __exit__(self, *exc):
        if self._old is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = self._old
        return False


class WeakSetScorer:
    """A live model scored on every task's weak set under the run's fitness: what a step that picks a
    merge weight on the weak sets needs (the ``blend`` step; benchmarks/reinject_variant.py). Merged
    tensors go in with :meth:`load`; the lm-eval wrapper keeps the same model."""

    def __init__(self, cfg, model_path, progress=print):
        from .evaluation import Evaluator
        from .models import load_model_and_tokenizer
        from .tasks import get_task

        self.weak_root = build_weak_sets(cfg, list(cfg.tasks), progress)
        self.model, self.tok = load_model_and_tokenizer(str(model_path), dtype=live_dtype(cfg.evolve.dtype))
        self.evaluator = Evaluator([get_task(t) for t in cfg.tasks], data=str(self.weak_root), split="weak",
                                   batch_size=cfg.evolve.batch_size)
        self.lm = self.evaluator.wrap(self.model, self.tok)
        self.fitness = FitnessSpec.from_config(cfg.evolve.fitness)

    def load(self, tensors: Mapping) -> None:
        load_weights(self.model, tensors)

    def score(self) -> tuple[dict, float]:
        """Per-task weak-set scores of the live model, and their fitness."""
        with quiet_progress_bars():
            scores = self.evaluator.evaluate(self.lm)
        return scores, self.fitness(scores)


def link_base(cfg) -> str:
    """Resolve the base model and link it as ``<output_dir>/base``, the path the shipped recipes
    (``base_model: runs/default/base``) use; returns the resolved folder or hub id."""
    from .models import resolve_model

    base_path = resolve_model(cfg.base_model)
    link = cfg.output_dir / "base"
    if Path(base_path).is_dir() and not link.exists():
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(Path(base_path).resolve(), target_is_directory=True)
    return base_path


def expert_gaps(cfg, members: Sequence[str]) -> dict[str, float]:
    """Per member that is an expert with both dev scores recorded by the experts step: its own-task
    dev score minus the base model's."""
    from .curriculum import measured_signals

    signals = measured_signals(cfg)
    return {m: signals[m]["expert"] - signals[m]["base"] for m in members
            if "expert" in signals.get(m, {}) and "base" in signals.get(m, {})}


def search_space(plan, cfg=None) -> tuple[GenomeSpace, list[float]]:
    """A search's genome and its starting point: every member at ``init_weight`` (default
    1/sqrt(members)) and ``init_density``; with ``start_weights: expert_gap`` (needs ``cfg``) each
    expert's start weight is scaled by its dev gain over the base relative to the members' mean gain
    (members with no recorded gain, such as earlier stages' models, keep the plain start weight)."""
    s = plan.search
    space = GenomeSpace(tuple(plan.members), s.layer_groups, s.evolve_density, tuple(s.weight_range),
                        tuple(s.density_range))
    init_w = s.init_weight if s.init_weight is not None else 1.0 / math.sqrt(len(plan.members))
    if s.start_weights == "uniform":
        return space, space.encode(init_w, s.init_density)
    if cfg is None:
        raise ValueError("start_weights: expert_gap needs the run config (the experts' dev scores)")
    # a floor keeps an expert that did not beat the base on its 32 dev rows in the merge at all
    gaps = {m: max(g, 0.01) for m, g in expert_gaps(cfg, plan.members).items()}
    mean_gap = sum(gaps.values()) / len(gaps) if gaps else 1.0
    weights = [init_w * gaps[m] / mean_gap if m in gaps else init_w for m in plan.members]
    return space, space.encode(weights, s.init_density)


def run_plan(cfg, stages: Sequence[str] | None = None, progress=print) -> dict[str, dict]:
    """Run every search of the plan (or of the named stages, or of single searches named by key,
    ``stage1/SC``) in order; finished searches are skipped. The searches of one stage depend on none
    of each other, so separate processes may run them side by side (one per key)."""
    from .experts import save_plain_model
    from .io import read_json
    from .recipes import write_recipe

    base_path = link_base(cfg)
    plan_all = cfg.plan()
    plans = [p for p in plan_all if stages is None or p.stage in stages or p.key in stages]
    if not plans:
        raise ValueError(f"no stage or search named {list(stages or [])}; stages are "
                         f"{list(dict.fromkeys(p.stage for p in plan_all))}, searches {[p.key for p in plan_all]}")
    weak_root = build_weak_sets(cfg, sorted({t for p in plans for t in p.tasks}), progress)
    results = {}
    for plan in plans:
        work = stage_dir(cfg, plan.key)
        if (work / MARKER).is_file():
            results[plan.key] = read_json(work / MARKER)
            if progress:
                progress(f"{plan.key}: done already (fitness {results[plan.key]['best_fitness']:.4f}), skipped")
            continue
        s = plan.search
        searching = s.max_evals > 1  # 1: the stage merges its start point (run_search scores it once)
        if progress:
            progress(f"{plan.key}: evolving {len(plan.members)} members {plan.members} on {len(plan.tasks)} "
                     f"weak task(s), budget {s.max_evals} evaluations" if searching else
                     f"{plan.key}: merging {len(plan.members)} members {plan.members} at the start point, no "
                     f"search (max_evals 1); scoring it on {len(plan.tasks)} weak task(s)")
        _guard_dtype(work / "live.json", live_dtype(cfg.evolve.dtype))  # before any member is loaded or scored
        runner = SearchRunner(cfg, plan, base_path, weak_root)
        space, x0 = search_space(plan, cfg)
        fit = FitnessSpec.from_config(plan.fitness)
        if plan.fitness.scale == "best_member":
            fit = fit.scaled_to(runner.member_scores(work / "member_scores.json",
                                                     (lambda m, k=plan.key: progress(f"{k}: {m}")) if progress else None))
        _guard_fitness(work / "fitness.json", fit)
        budget = SearchBudget(s.popsize, s.sigma, s.max_evals, s.max_seconds, cfg.seed)
        many = None
        if cfg.evolve.parallel == "ray":
            from .parallel import RayPool

            many = RayPool(cfg, plan, base_path, weak_root, cfg.evolve.ray_workers)
        try:
            res = run_search(space, runner, fit, budget, work, x0,
                             evaluate_many=many, progress=(lambda m, k=plan.key: progress(f"{k}: {m}"))
                             if progress else None)
        finally:
            if many is not None:
                many.close()
        # Materialise the winner: the folder later stages and mergekit read, and its recipe.
        runner.apply(res.best_params)
        model_dir = member_path(cfg, plan.key)
        model_dir.parent.mkdir(parents=True, exist_ok=True)
        tmp = model_dir.parent / f".{plan.group}.tmp-{os.getpid()}"
        save_plain_model(runner.model, runner.tok, tmp, save_dtype="bfloat16")
        replace_dir(tmp, model_dir)
        recipe = write_recipe(cfg.output_dir / "recipes" / f"{plan.stage}_{plan.group}.yml", base_path,
                              {m: str(p) for m, p in runner.member_paths.items()},
                              runner.full_params(res.best_params), dtype="float32", out_dtype="bfloat16",
                              comment=f"MEM-MCL {plan.key}: " + (
                                  f"best of {res.evaluations} CMA-ES evaluations, weak-set fitness "
                                  f"{res.best_fitness:.4f} (start {res.start_fitness:.4f})" if searching else
                                  f"the start point, no search (max_evals 1), weak-set fitness {res.best_fitness:.4f}"))
        plot_fitness({plan.key: res.journal}, work / "fitness.png", title=f"{plan.key} fitness")
        summary = {**{k: (str(v) if isinstance(v, Path) else v) for k, v in res.__dict__.items()},
                   "model": str(model_dir), "recipe": str(recipe), "members": plan.members, "tasks": plan.tasks}
        write_json(work / MARKER, summary)
        results[plan.key] = summary
        if progress:
            progress(f"{plan.key}: fitness {res.start_fitness:.4f} -> {res.best_fitness:.4f}; winner on the weak "
                     "sets:\n" + format_weak_scores(res.best_scores))
        del runner
    _write_stage_aliases(cfg, results)
    return results


def _guard_spec(path: Path, spec: dict, refusal: Callable[[dict], str]) -> None:
    """Keep ``spec`` at ``path``; a search resumed under another one is refused with ``refusal(old)``."""
    from .io import read_json

    if path.is_file() and (old := read_json(path)) != spec:
        raise ValueError(refusal(old))
    write_json(path, spec)


def _guard_fitness(path: Path, fit: FitnessSpec) -> None:
    """A search resumed under another fitness would rank journal records scored two ways: refuse it."""
    spec = json.loads(json.dumps(fit.__dict__))
    _guard_spec(path, spec, lambda old: f"{path.parent}: this search was started with fitness {old}, the config now "
                f"gives {spec}; restore the old fitness settings or delete {path.parent} to start it again")


def _guard_dtype(path: Path, dtype) -> None:
    """A search resumed (or replayed from a recorded journal) in another live dtype would rank
    candidates scored two ways: a CPU without native bf16 scores float32 under ``dtype: auto``, and
    its fitness differs (RESULTS.md session 50). Refuse it; a search that predates the file records it."""
    _guard_spec(path, {"dtype": str(dtype)}, lambda old: (
        f"{path.parent}: this search's candidates were scored in {old['dtype']}, this machine scores them in "
        f"{dtype} (evolve.dtype: auto takes bfloat16 only where it is native); set evolve.dtype to the recorded "
        f"one (emulated bf16 is over 10x slower on such a CPU) or delete {path.parent} to start the search again"))


def format_weak_scores(scores: Mapping[str, Mapping[str, float]]) -> str:
    lines = [f"  {'task':16} {'score':>6} {'p_gold':>6}"]
    for task, row in scores.items():
        p = f"{row['p_gold']:6.3f}" if "p_gold" in row else f"{'-':>6}"
        lines.append(f"  {task:16} {row['score']:6.3f} {p}")
    return "\n".join(lines)


def _write_stage_aliases(cfg, results: Mapping[str, dict]) -> None:
    """A stage with a single group also gets ``recipes/<stage>.yml`` (the unified one: stage2.yml);
    the plan says how many groups a stage has (``results`` may hold one search of several)."""
    by_stage: dict[str, list[str]] = {}
    for plan in cfg.plan():
        by_stage.setdefault(plan.stage, []).append(plan.key)
    for stage, keys in by_stage.items():
        if len(keys) == 1 and keys[0] in results:
            src = Path(results[keys[0]]["recipe"])
            write_text(src.with_name(f"{stage}.yml"), src.read_text(encoding="utf-8"))


def final_model_dir(cfg) -> Path:
    """The model the last search of the plan produced."""
    return member_path(cfg, cfg.plan()[-1].key)


__all__ = [
    "FitnessSpec",
    "GenomeSpace",
    "Journal",
    "SearchBudget",
    "SearchResult",
    "build_weak_sets",
    "final_model_dir",
    "plot_fitness",
    "run_plan",
    "run_search",
]
