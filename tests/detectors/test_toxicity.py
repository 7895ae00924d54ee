"""Toxicity: the offline linear backend and the detoxify backend (tiny checkpoint)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from guardline.detectors.toxicity import DetoxifyBackend, LinearBackend, ToxicityDetector
from guardline.errors import ConfigError
from guardline.settings import ToxicitySettings

SENTENCES = [
    "You are a worthless idiot and everyone hates you.",
    "Have a lovely day, friend.",
    "Shut up, you pathetic moron.",
    "The quarterly report is attached for your review.",
]


@pytest.fixture(scope="module")
def linear() -> LinearBackend:
    return LinearBackend()


def test_linear_scores_equal_scikit_learn(linear: LinearBackend) -> None:
    from profanity_check import predict_prob

    ours = [s["toxicity"] for s in linear.score(SENTENCES)]
    assert ours == pytest.approx(list(predict_prob(SENTENCES)), abs=1e-9)


def test_flags_toxic_sentences_with_their_spans(linear: LinearBackend) -> None:
    detector = ToxicityDetector(ToxicitySettings(), backend=linear)
    text = " ".join(SENTENCES)
    found = [(text[f.start : f.end], f.category) for f in detector.detect(text)]
    assert found == [(SENTENCES[0], "toxicity"), (SENTENCES[2], "toxicity")]


def test_thresholds_are_per_label(linear: LinearBackend) -> None:
    strict = ToxicityDetector(ToxicitySettings(thresholds={"toxicity": 0.99999}), backend=linear)
    assert [f.score > 0.99999 for f in strict.detect(SENTENCES[2])] == [True]
    assert strict.detect("You idiot.") == [] or strict.detect("You idiot.")[0].score >= 0.99999
    off = ToxicityDetector(ToxicitySettings(thresholds={"insult": 0.1}), backend=linear)
    assert off.detect(SENTENCES[0]) == []  # the linear backend has no "insult" label


def _tiny_detoxify(root: Path, biases: list[float]) -> tuple[Path, Path]:
    """A detoxify-format checkpoint of a 1-layer BERT, its config and tokenizer files."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizer

    config_dir = root / "hf"
    config_dir.mkdir()
    words = [
        "[PAD]",
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "[MASK]",
        *["you", "are", "a", "the", "idiot", "nice", "day"],
    ]
    (config_dir / "vocab.txt").write_text("\n".join(words) + "\n")
    BertTokenizer(vocab_file=str(config_dir / "vocab.txt")).save_pretrained(str(config_dir))
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        max_position_embeddings=64,
        num_labels=6,
    )
    config.save_pretrained(str(config_dir))
    torch.manual_seed(0)
    model = BertForSequenceClassification(config)
    with torch.no_grad():  # outputs decided by the bias alone: a known answer to check
        model.classifier.weight.zero_()
        model.classifier.bias.copy_(torch.tensor(biases))
    checkpoint = root / "tiny.ckpt"
    torch.save(
        {
            "config": {
                "arch": {
                    "args": {
                        "model_type": "bert-base-uncased",  # what detoxify's checkpoints name
                        "model_name": "BertForSequenceClassification",
                        "tokenizer_name": "BertTokenizer",
                        "num_classes": 6,
                    }
                },
                "dataset": {
                    "args": {
                        "classes": [
                            "toxic",
                            "severe_toxic",
                            "obscene",
                            "threat",
                            "insult",
                            "identity_hate",
                        ]
                    }
                },
            },
            "state_dict": model.state_dict(),
        },
        str(checkpoint),
    )
    return checkpoint, config_dir


def test_detoxify_local_checkpoint_loads_offline(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checkpoint, config_dir = _tiny_detoxify(tmp_path, [4.0, -4.0, -4.0, -4.0, 3.0, -4.0])
    settings = ToxicitySettings(
        backend="detoxify", checkpoint=checkpoint, huggingface_config_path=config_dir
    )
    detector = ToxicityDetector(settings)
    assert detector.cost == "heavy"
    assert detector.backend == "detoxify (tiny.ckpt)"
    found = detector.detect("you are a idiot. nice day.")
    # detoxify's names: toxic -> toxicity, identity_hate -> identity_attack
    assert sorted({f.category for f in found}) == ["insult", "toxicity"]
    assert len(found) == 4  # two sentences, two labels above 0.5 each
    strict = ToxicityDetector(
        settings.model_copy(update={"thresholds": {"toxicity": 0.99, "insult": 0.5}})
    )
    assert {f.category for f in strict.detect("you are a idiot.")} == {"insult"}


def test_detoxify_named_model_not_on_disk_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    with pytest.raises(ConfigError, match=r"detoxify model 'original' is not on this machine"):
        DetoxifyBackend(ToxicitySettings(backend="detoxify", model="original"))
    with pytest.raises(ConfigError, match="unknown detoxify model 'huge'"):
        DetoxifyBackend(ToxicitySettings(backend="detoxify", model="huge"))


def test_detoxify_named_model_from_the_hub_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A named model loads from torch's hub cache, where detoxify itself would put it."""
    checkpoint, config_dir = _tiny_detoxify(tmp_path, [4.0, -4.0, -4.0, -4.0, -4.0, -4.0])
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    cache = tmp_path / "torch" / "hub" / "checkpoints"
    cache.mkdir(parents=True)
    os.link(checkpoint, cache / "original-albert-0e1d6498.ckpt")
    settings = ToxicitySettings(
        backend="detoxify", model="original-small", huggingface_config_path=config_dir
    )
    assert [f.category for f in ToxicityDetector(settings).detect("you idiot")] == ["toxicity"]
