"""Frozen MiniLM text vectors for the item tower, cached by text hash (see :mod:`dc003.text.embed`)."""
