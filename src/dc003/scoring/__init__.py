"""Scoring: how a ranking is made and measured, shared by training-time validation, evaluation and serving.

Full-catalogue top-k (:mod:`.ranking`), the offline metrics and their bootstrap intervals (:mod:`.metrics`),
the baselines (:mod:`.baselines`; phase 2 distils the ALS one) and the serving score (:mod:`.serving_score`:
cosine plus the popularity prior and the repurchase bonus, as the vectors the index holds). numpy and scipy
only: nothing here imports torch or another part of the model side (model, train, evaluate, deploy).
"""
