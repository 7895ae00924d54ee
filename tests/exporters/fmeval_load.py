"""Load an exported dataset with AWS FMEval's own loader and print what it read, as JSON.

Runs under ``.venv-fmeval/bin/python`` (``make fmeval-venv``), never the project's venv:
fmeval's pins (transformers<5, numpy 1.26) cannot live beside Guardline's. Usage::

    .venv-fmeval/bin/python tests/exporters/fmeval_load.py FILE [--shape fmeval|bedrock]

stdout is one JSON object: ``count``, ``columns`` and ``rows`` (every row, as loaded, in
file order); everything else (Ray's chatter, warnings) goes to stderr. Offline: only
``fmeval.data_loaders`` is imported (other fmeval modules download models at import),
IMDS probes and Ray usage stats are off.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings
from typing import Any

os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")  # boto3 client built at import
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("PARALLELIZATION_FACTOR", "1")  # fmeval repartitions into this * 5
os.environ.setdefault("HF_HUB_OFFLINE", "1")

# Where each shape keeps FMEval's columns (DataConfig locations are JMESPath).
SHAPES = {
    "fmeval": {
        "model_input_location": "model_input",
        "model_output_location": "model_output",
        "target_output_location": "target_output",
        "category_location": "category",
    },
    "bedrock": {
        "model_input_location": "prompt",
        "model_output_location": "modelResponses[0].response",
        "target_output_location": "referenceResponse",
        "category_location": "category",
    },
}


def load(path: str, shape: str) -> dict[str, Any]:
    import ray
    from fmeval.data_loaders.data_config import DataConfig
    from fmeval.data_loaders.util import get_dataset

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, logging_level="ERROR")
    try:
        ray.data.DataContext.get_current().enable_progress_bars = False
        config = DataConfig(
            dataset_name="guardline_export",
            dataset_uri=path,
            dataset_mime_type="application/jsonlines",
            **SHAPES[shape],
        )
        dataset = get_dataset(config)
        rows = dataset.take_all()
        return {"count": dataset.count(), "columns": sorted(dataset.columns()), "rows": rows}
    finally:
        ray.shutdown()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="fmeval")
    args = parser.parse_args()
    # Ray's processes inherit fd 1: point it at stderr so stdout carries only the JSON.
    stdout = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Ray's own deprecations and unclosed files
        summary = load(os.path.abspath(args.file), args.shape)
    stdout.write(json.dumps(summary, ensure_ascii=False) + "\n")
    stdout.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
