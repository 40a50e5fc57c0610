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

_WEAK_WORDS = {"local", "weak", "0", "false", "small", "easy"}
_STRONG_WORDS = {"hosted", "strong", "1", "true", "large", "hard"}


@dataclass
class Labelled:
    prompt: str
    weak: bool          # the weak model's answer is good enough
    strong: bool        # the strong model's answer is good enough

    @property
    def needs_strong(self) -> int:
        return int(self.strong and not self.weak)


def _truth(value: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise ValueError(f"expected True/False, got {value!r}")


def _from_label(prompt: str, label: object) -> Labelled:
    v = str(label).strip().lower()
    if v in _WEAK_WORDS:
        return Labelled(prompt, weak=True, strong=True)
    if v in _STRONG_WORDS:
        return Labelled(prompt, weak=False, strong=True)
    raise ValueError(f"label must be one of {sorted(_WEAK_WORDS | _STRONG_WORDS)}, got {label!r}")


def _read_csv(path: Path) -> list[Labelled]:
    out = []
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if not header or header[0].strip().lower() != "prompt":
            raise ValueError(f"{path}: first column must be 'prompt'")
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                if len(header) >= 3:          # RouteLLM: prompt, <weak model>, <strong model>
                    out.append(Labelled(row[0], _truth(row[1]), _truth(row[2])))
                else:                          # prompt, label
                    out.append(_from_label(row[0], row[1]))
            except (ValueError, IndexError) as exc:
                raise ValueError(f"{path}:{lineno}: {exc}") from exc
    return out


def _read_jsonl(path: Path) -> list[Labelled]:
    out = []
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
            if "label" in obj:
                out.append(_from_label(obj["prompt"], obj["label"]))
            else:
                out.append(Labelled(obj["prompt"], bool(obj["weak_correct"]), bool(obj["strong_correct"])))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{path}:{lineno}: need prompt + label, or prompt + weak_correct + strong_correct "
                             f"({exc})") from exc
    return out


def load_labels(path: Path) -> list[Labelled]:
    """A RouteLLM CSV, a prompt+label CSV/JSONL, or a directory of them (contaminated prompts dropped)."""
    path = Path(path)
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
            raise ValueError(f"{path}: no .csv or .jsonl labelled prompts inside")
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


def evaluate(scores: np.ndarray, labelled: list[Labelled]) -> Report:
    weak = np.array([r.weak for r in labelled])
    strong = np.array([r.strong for r in labelled])
    share, quality = curve(np.asarray(scores, float), weak, strong)
    w, s = weak.mean(), strong.mean()
    gap = s - w
    oracle = (weak | strong).mean()

    def cpt(x: float) -> float:
        ok = quality >= w + x * gap - 1e-12
        return float(share[ok].min()) if ok.any() else float("nan")

    auc = np.trapezoid(quality, share)
    apgr = (auc - w) / gap if gap else float("nan")
    return Report(n=len(labelled), weak=float(w), strong=float(s), oracle=float(oracle),
                  oracle_strong_share=float((strong & ~weak).mean()), cpt50=cpt(0.5), cpt80=cpt(0.8),
                  # the oracle spends strong calls only where they help, each adding 1/n quality
                  oracle_cpt50=float(0.5 * gap), oracle_cpt80=float(0.8 * gap),
                  apgr=float(apgr), share=share, quality=quality)


def threshold_for(scores: np.ndarray, target_strong: float) -> float:
    """The threshold that sends `target_strong` of these prompts to the strong tier (score >= threshold)."""
    if not 0.0 <= target_strong <= 1.0:
        raise ValueError("target share must be between 0 and 1")
    if target_strong == 0.0:
        return float(np.nextafter(np.max(scores), np.inf))
    return float(np.quantile(np.asarray(scores, float), 1.0 - target_strong, method="higher"))
