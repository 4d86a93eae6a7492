"""One thin module per DVC stage: `python -m pipeline.<stage>`; logic lives in src/dc003."""
