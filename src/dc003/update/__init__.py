"""The daily incremental update: ``dc003 update --since DATE`` and the ``update`` / ``update_promote`` stages.

:mod:`dc003.update.run` runs an update, :mod:`dc003.update.promote` gates and promotes its folder (the
``update_promote`` stage imports only the latter).

What it does, in order, all into ``${paths.update_dir}`` (laid out as the project root: ``checkpoints/``,
``metrics/``, ``reports/``, ``plots/``, ``artifacts/``, plus ``update.json``), written under a temporary
sibling and swapped in only when every step succeeded (a failed update leaves the previous one as it was):

1. ``since`` is checked against the dataset's splits (``splits.json``): a date, inside the train split, with
   interactions from it on. The update trains where a full run trains: the val and test weeks stay held
   out, so its evaluation and gates are those of the full pipeline, on the same test week.
2. warm start (:func:`warm_start`): the newest GTO version at stage ``prod`` of the update's artifact or of
   the pipeline's model (its checkpoint read back from DVC at the tagged commit), else the pipeline's
   ``checkpoints/best_model.pt``; ``update.json`` records which, and the ``embedding_mappings.json``
   exported with it: a grown catalogue and the vocabularies are checked against it
   (:func:`dc003.train.update.fit_catalogue`).
3. fine-tune (:func:`dc003.train.update.run_update_training`), then the contract's checkpoint files and
   training reports, as phase 4 writes them.
4. the evaluate, export (ONNX towers, serving features of every user, re-embedded catalogue, FAISS index
   rebuilt) and bench stages' own functions, then the gates of ``gates/promotion.yaml`` on those files.
5. promotion (:func:`promote_update`): :func:`dc003.registry.promote_project` for the artifact
   ``two-tower-update``, only when every gate passes (a refusal creates no tag).
"""
