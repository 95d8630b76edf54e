"""Tasks of the example pipeline defined in code, beside its notebooks and its SQL task."""

import json
from pathlib import Path


def setup(pipeline):
    @pipeline.task(upstream=["evaluate", "train"], product="output/model_card.json", retries=1, retry_delay=0)
    def model_card(upstream, product, owner="data-science"):
        """A small model card: what was trained, how it scored, who owns it."""
        metrics = json.loads(Path(upstream["evaluate"]["metrics"]).read_text())
        model = json.loads(Path(upstream["train"]["model"]).read_text())
        card = {
            "model": "churn logistic regression",
            "owner": owner,
            "features": model["features"],
            "test_auc": metrics["model"]["auc"],
            "beats_baseline": metrics["model"]["auc"] > metrics["baseline"]["auc"],
        }
        Path(product).write_text(json.dumps(card, indent=2))
        print(json.dumps(card))
