"""Evaluation: ranking metrics, baselines, the evaluate stage, plots and the model card."""
