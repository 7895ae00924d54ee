"""Toxicity, scored per sentence, by one of two backends.

``linear`` (the default, offline, fast): the model that ships inside the PyPI package
``alt-profanity-check`` (word TF-IDF and five sigmoid-calibrated linear SVMs, trained by its
authors on human-labelled Wikipedia and Twitter comments; ~1 MB, refreshed with every
scikit-learn release). Its arrays are read once at startup and scored here with a regex
and dictionary lookups, giving the same probabilities as scikit-learn without its ~3 ms
per call. One label: ``toxicity``.

``detoxify``: a detoxify model, loaded exactly as detoxify loads it (a named model from
torch's hub cache, or a local checkpoint plus a local Hugging Face config directory), with
per-label scores (toxicity, severe_toxicity, obscene, threat, insult, identity_attack, ...).
"""

from __future__ import annotations

import math
import os
import re
from collections import Counter
from pathlib import Path
from typing import Any, Protocol

from guardline.detectors.base import Cost, Finding
from guardline.detectors.sentences import split
from guardline.errors import ConfigError
from guardline.settings import ToxicitySettings


class Backend(Protocol):
    name: str
    cost: Cost

    def score(self, sentences: list[str]) -> list[dict[str, float]]:
        """Per sentence, a score in [0, 1] per label."""
        ...


class ToxicityDetector:
    name = "toxicity"
    context_chars = 0

    def __init__(self, settings: ToxicitySettings, backend: Backend | None = None) -> None:
        self._backend = backend or _backend(settings)
        self._thresholds = dict(settings.thresholds)
        self.cost: Cost = self._backend.cost
        self.backend = self._backend.name

    def detect(self, text: str, start: int = 0) -> list[Finding]:
        spans = [(s, e) for s, e in split(text, start) if text[s:e].strip()]
        if not spans:
            return []
        scores = self._backend.score([text[s:e] for s, e in spans])
        findings = []
        for (begin, stop), labels in zip(spans, scores, strict=True):
            end = begin + len(text[begin:stop].rstrip())  # the sentence, not its trailing space
            for label, score in labels.items():
                threshold = self._thresholds.get(label)
                if threshold is not None and score >= threshold:
                    findings.append(Finding(self.name, label, score, begin, end))
        return findings


def _backend(settings: ToxicitySettings) -> Backend:
    if settings.backend == "linear":
        return LinearBackend()
    return DetoxifyBackend(settings)


class LinearBackend:
    name = "linear (alt-profanity-check)"
    cost: Cost = "fast"
    _TOKEN = re.compile(r"(?u)\b\w\w+\b")

    def __init__(self) -> None:
        import importlib.resources  # noqa: PLC0415

        import joblib  # noqa: PLC0415

        data = importlib.resources.files("profanity_check") / "data"
        vectorizer = joblib.load(str(data / "vectorizer.joblib"))
        model = joblib.load(str(data / "model.joblib"))
        if vectorizer.get_params()["ngram_range"] != (1, 1) or not vectorizer.lowercase:
            raise ConfigError("detectors.toxicity: unexpected alt-profanity-check model layout")
        members = model.calibrated_classifiers_
        coefs = [m.estimator.coef_.ravel() for m in members]
        idf = vectorizer.idf_
        # term -> (idf, weight per ensemble member)
        self._terms: dict[str, tuple[float, tuple[float, ...]]] = {
            term: (float(idf[i]), tuple(float(c[i]) for c in coefs))
            for term, i in vectorizer.vocabulary_.items()
        }
        self._intercepts = [float(m.estimator.intercept_[0]) for m in members]
        # sklearn's sigmoid calibration: p = 1 / (1 + exp(a * decision + b))
        self._calibration = [
            (float(m.calibrators[0].a_), float(m.calibrators[0].b_)) for m in members
        ]

    def score(self, sentences: list[str]) -> list[dict[str, float]]:
        return [{"toxicity": self._probability(s)} for s in sentences]

    def _probability(self, text: str) -> float:
        counts = Counter(t for t in self._TOKEN.findall(text.lower()) if t in self._terms)
        members = len(self._intercepts)
        decisions = list(self._intercepts)
        if counts:
            weighted = []
            norm = 0.0
            for term, count in counts.items():
                idf, weights = self._terms[term]
                value = count * idf
                norm += value * value
                weighted.append((value, weights))
            norm = math.sqrt(norm)
            for value, weights in weighted:
                for i in range(members):
                    decisions[i] += value / norm * weights[i]
        total = 0.0
        for decision, (a, b) in zip(decisions, self._calibration, strict=True):
            total += 1.0 / (1.0 + math.exp(a * decision + b))
        return total / members


class DetoxifyBackend:
    cost: Cost = "heavy"

    def __init__(self, settings: ToxicitySettings) -> None:
        # Never reach the Hugging Face hub: everything must already be on disk.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        try:
            import torch  # noqa: PLC0415
            from detoxify import detoxify as dx  # noqa: PLC0415
        except ImportError as exc:
            raise ConfigError(
                "detectors.toxicity.backend: detoxify is not installed; "
                "pip install 'guardline[detoxify]' (torch==2.13.0 for the CPU build)"
            ) from exc
        self._torch = torch
        loaded = self._load(settings, torch, dx)
        # detoxify standardises the class names of its checkpoints this way.
        rename = {
            "toxic": "toxicity",
            "identity_hate": "identity_attack",
            "severe_toxic": "severe_toxicity",
        }
        self._labels = [rename.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        args = dict(loaded["config"]["arch"]["args"])
        config_dir = settings.huggingface_config_path
        if config_dir is not None:
            # detoxify 0.5.4 still asks the hub for the config named in the checkpoint
            # (e.g. bert-base-uncased) even with a local config path (unitaryai/detoxify#126).
            args["model_type"] = str(config_dir)
        model, tokenizer = dx.get_model_and_tokenizer(
            **args,
            state_dict=loaded["state_dict"],
            huggingface_config_path=str(config_dir) if config_dir else None,
        )
        model.to(settings.device)
        model.eval()
        self._model, self._tokenizer, self._device = model, tokenizer, settings.device
        source = settings.checkpoint.name if settings.checkpoint else settings.model
        self.name = f"detoxify ({source})"

    @staticmethod
    def _load(settings: ToxicitySettings, torch: Any, dx: Any) -> dict[str, Any]:
        if settings.checkpoint is not None:
            path = settings.checkpoint
        else:
            url = dx.MODEL_URLS.get(settings.model)
            if url is None:
                raise ConfigError(
                    f"detectors.toxicity.model: unknown detoxify model {settings.model!r}; "
                    f"one of {', '.join(dx.MODEL_URLS)}, or set checkpoint"
                )
            path = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[1]
            if not path.exists():
                raise ConfigError(
                    f"detectors.toxicity: detoxify model {settings.model!r} is not on this "
                    f"machine (expected {path}); fetch {url} where a network is available, or "
                    "set checkpoint and huggingface_config_path"
                )
        loaded: dict[str, Any] = torch.load(
            str(path), map_location=settings.device, weights_only=False
        )
        if "config" not in loaded or "state_dict" not in loaded:
            raise ConfigError(f"detectors.toxicity.checkpoint: {path} is not a detoxify checkpoint")
        return loaded

    def score(self, sentences: list[str]) -> list[dict[str, float]]:
        with self._torch.no_grad():
            inputs = self._tokenizer(sentences, return_tensors="pt", truncation=True, padding=True)
            logits = self._model(**inputs.to(self._device))[0]
            scores = self._torch.sigmoid(logits).cpu().tolist()
        return [dict(zip(self._labels, row, strict=True)) for row in scores]
