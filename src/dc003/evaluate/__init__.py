"""Evaluation: the evaluate stage (the two-tower and the baselines scored side by side on the test week),
segments, paired comparisons, rolling folds, plots and the model card. The rankings, metrics and baselines
themselves are in :mod:`dc003.scoring`."""
