"""Labelled prompts in, RouteLLM's metrics out: CPT(50%), CPT(80%), APGR and the oracle line.

Definitions follow RouteLLM (lm-sys/RouteLLM, routellm/evals): sweeping the threshold sends the k
highest-scored prompts to the strong model; quality is the share answered correctly (strong's answer for
those k, weak's for the rest). PGR = (quality - weak) / (strong - weak). CPT(x%) = the smallest share of
strong calls with PGR >= x. APGR = (AUC(router) - AUC(weak)) / (AUC(strong) - AUC(weak)), the AUC taken over
the share of strong calls from 0 to 1 (a random router scores 0.5).
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from router.errors import InputError

_WEAK_WORDS = {"local", "weak", "0", "false", "small", "easy"}
_STRONG_WORDS = {"hosted", "strong", "1", "true", "large", "hard"}


@dataclass
class Labelled:
    prompt: str
    weak: float         # quality of the weak model's answer: 1/0 for right/wrong, or a judge's score
    strong: float       # quality of the strong model's answer, same scale
    group: str = ""     # where the prompt came from (MMLU domain, file): the unit of cross-validation folds

    @property
    def needs_strong(self) -> int:
        return int(self.strong > self.weak)


def _truth(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise InputError(f"expected True/False, got {value!r}")


def _from_label(prompt: str, label: object, group: str = "") -> Labelled:
    v = str(label).strip().lower()
    if v in _WEAK_WORDS:
        return Labelled(prompt, weak=True, strong=True, group=group)
    if v in _STRONG_WORDS:
        return Labelled(prompt, weak=False, strong=True, group=group)
    raise InputError(f"label must be one of {sorted(_WEAK_WORDS | _STRONG_WORDS)}, got {label!r}")


def _read_csv(path: Path) -> list[Labelled]:
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0].strip().lower() != "prompt":
            raise InputError(f"{path}: first column must be 'prompt'")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                if len(header) >= 3:          # RouteLLM: prompt, <weak model>, <strong model>
                    out.append(Labelled(row[0], _truth(row[1]), _truth(row[2]), path.stem))
                else:                          # prompt, label
                    out.append(_from_label(row[0], row[1], path.stem))
            except (ValueError, IndexError) as exc:
                raise InputError(f"{path}:{lineno}: {exc}") from exc
    return out


def _read_jsonl(path: Path) -> list[Labelled]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if "label" in obj:
                out.append(_from_label(obj["prompt"], obj["label"], path.stem))
            else:
                out.append(Labelled(obj["prompt"], bool(obj["weak_correct"]), bool(obj["strong_correct"]), path.stem))
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{lineno}: need prompt + label, or prompt + weak_correct + strong_correct "
                             f"({exc})") from exc
    return out


ARENA_WEAK = "Mixtral-8x7B-Instruct-v0.1"
ARENA_STRONG = "gpt-4-turbo"


def _judgments(path: Path) -> dict[str, float]:
    scores = {}
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if obj.get("score") is not None:       # the judge gave no parsable rating: no quality to compare
                scores[str(obj["question_id"])] = float(obj["score"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InputError(f"{path}:{lineno}: need question_id and score ({exc})") from exc
    return scores


def load_arena(path: Path, weak: str = ARENA_WEAK, strong: str = ARENA_STRONG) -> list[Labelled]:
    """arena-hard-auto's layout: question.jsonl + model_judgment/<model>.jsonl; the judge's score is quality."""
    path = Path(path)
    files = {m: path / "model_judgment" / f"{m}.jsonl" for m in (weak, strong)}
    for model, file in files.items():
        if not file.is_file():
            known = sorted(p.stem for p in (path / "model_judgment").glob("*.jsonl"))
            raise FileNotFoundError(f"{file}: no judgments for {model!r}; judged models here: {known}")
    w, s = _judgments(files[weak]), _judgments(files[strong])
    out = []
    for lineno, line in enumerate((path / "question.jsonl").read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            q = json.loads(line)
            qid, prompt = str(q["question_id"]), q["turns"][0]
            prompt = prompt if isinstance(prompt, str) else prompt["content"]
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise InputError(f"{path / 'question.jsonl'}:{lineno}: need question_id and turns ({exc})") from exc
        if qid in w and qid in s:
            out.append(Labelled(prompt, w[qid], s[qid], q.get("category") or path.name))
    if not out:
        raise InputError(f"{path}: no question has a score from both {weak} and {strong}")
    return out


def load_labels(path: Path) -> list[Labelled]:
    """A RouteLLM CSV, a prompt+label CSV/JSONL, a directory of them (contaminated prompts dropped), or an
    arena-hard-auto directory (question.jsonl + model_judgment/)."""
    path = Path(path)
    if path.is_dir() and (path / "question.jsonl").is_file() and (path / "model_judgment").is_dir():
        return load_arena(path)
    if path.is_dir():
        rows: list[Labelled] = []
        for file in sorted(path.iterdir()):
            if file.suffix == ".csv" or (file.suffix == ".jsonl" and file.name != "contaminated_prompts.jsonl"):
                rows += load_labels(file)
        dirty = path / "contaminated_prompts.jsonl"
        if dirty.exists():
            # RouteLLM's file pairs each eval prompt with the training prompt it leaked from
            bad = {obj.get("eval_prompt") or obj.get("prompt")
                   for obj in map(json.loads, filter(str.strip, dirty.read_text().splitlines()))}
            rows = [r for r in rows if r.prompt not in bad]
        if not rows:
            raise InputError(f"{path}: no .csv or .jsonl labelled prompts inside")
        return rows
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file")
    return _read_jsonl(path) if path.suffix == ".jsonl" else _read_csv(path)


@dataclass
class Report:
    n: int
    weak: float
    strong: float
    oracle: float
    oracle_strong_share: float
    oracle_cpt50: float
    oracle_cpt80: float
    cpt50: float
    cpt80: float
    apgr: float
    share: np.ndarray           # strong-call share per point of the sweep
    quality: np.ndarray


def curve(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Quality when the k highest scores go strong, for k = 0..n (ties go strong together)."""
    order = np.argsort(-scores, kind="stable")
    gain = (strong[order].astype(float) - weak[order].astype(float))
    quality = (weak.sum() + np.concatenate([[0.0], np.cumsum(gain)])) / len(scores)
    share = np.arange(len(scores) + 1) / len(scores)
    # inside a run of tied scores a threshold cannot split: keep only the run's end points
    s = scores[order]
    keep = np.concatenate([[True], s[1:] != s[:-1], [True]])
    return share[keep], quality[keep]


def _cpt(share: np.ndarray, quality: np.ndarray, w: float, gap: float, x: float) -> float:
    ok = quality >= w + x * gap - 1e-12
    return float(share[ok].min()) if ok.any() else float("nan")


def evaluate(scores: np.ndarray, labelled: list[Labelled]) -> Report:
    weak = np.array([r.weak for r in labelled], float)
    strong = np.array([r.strong for r in labelled], float)
    return _report(np.asarray(scores, float), weak, strong)


def _report(scores: np.ndarray, weak: np.ndarray, strong: np.ndarray) -> Report:
    share, quality = curve(scores, weak, strong)
    w, s = weak.mean(), strong.mean()
    gap = s - w
    # the oracle sends strong exactly the prompts where the strong answer is better, best gain first
    o_share, o_quality = curve(strong - weak, weak, strong)
    auc = np.trapezoid(quality, share)
    apgr = (auc - w) / gap if gap else float("nan")
    return Report(n=len(scores), weak=float(w), strong=float(s), oracle=float(np.maximum(weak, strong).mean()),
                  oracle_strong_share=float((strong > weak).mean()), cpt50=_cpt(share, quality, w, gap, 0.5),
                  cpt80=_cpt(share, quality, w, gap, 0.8), oracle_cpt50=_cpt(o_share, o_quality, w, gap, 0.5),
                  oracle_cpt80=_cpt(o_share, o_quality, w, gap, 0.8), apgr=float(apgr), share=share, quality=quality)


@dataclass
class Interval:
    value: float
    low: float
    high: float

    def format(self, spec: str) -> str:
        return f"{self.value:{spec}} [{self.low:{spec}}, {self.high:{spec}}]"


def bootstrap(scores: np.ndarray, labelled: list[Labelled], *, samples: int = 1000,
              seed: int = 0) -> dict[str, Interval]:
    """CPT(50%), CPT(80%), APGR with percentile 95% intervals from resampling the prompts."""
    scores = np.asarray(scores, float)
    weak = np.array([r.weak for r in labelled], float)
    strong = np.array([r.strong for r in labelled], float)
    point = _report(scores, weak, strong)
    rng = np.random.default_rng(seed)
    draws = {"cpt50": [], "cpt80": [], "apgr": []}
    for _ in range(samples):
        idx = rng.integers(0, len(scores), len(scores))
        if strong[idx].mean() == weak[idx].mean():
            continue
        r = _report(scores[idx], weak[idx], strong[idx])
        for key in draws:
            draws[key].append(getattr(r, key))
    nan = float("nan")                   # no quality gap in any resample: nothing to put an interval on
    return {key: Interval(getattr(point, key), float(np.nanpercentile(v, 2.5)) if v else nan,
                          float(np.nanpercentile(v, 97.5)) if v else nan) for key, v in draws.items()}


def threshold_for(scores: np.ndarray, target_strong: float) -> float:
    """The threshold that sends `target_strong` of these prompts to the strong tier (score >= threshold)."""
    if not 0.0 <= target_strong <= 1.0:
        raise InputError("target share must be between 0 and 1")
    if target_strong == 0.0:
        return float(np.nextafter(np.max(scores), np.inf))
    return float(np.quantile(np.asarray(scores, float), 1.0 - target_strong, method="higher"))
