"""``dc003 serve``: the HTTP service over the exported artifacts (FastAPI on uvicorn), its Redis cache and
the switch to a new model version. No pipeline stage imports it (so editing it re-runs nothing), and it
imports neither ``model`` nor ``train``: a serving process never loads torch."""
