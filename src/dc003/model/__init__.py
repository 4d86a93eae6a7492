"""The DC-003 two-tower model: resolved architecture config, towers, losses, EMA and checkpoints.

Nothing here imports torch at package import time; import the submodules that need it.
"""
