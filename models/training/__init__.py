"""Training: data split, embedding cache and the orchestration of the train steps."""
