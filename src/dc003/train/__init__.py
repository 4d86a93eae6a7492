"""Training: the DC-002 dataset in memory, batches, the four phases, validation, monitoring and resume.

Entry points for the pipeline stages are in :mod:`dc003.train.run`.
"""
