"""Evaluating policies: sampling replies reproducibly, scoring them with reward models, and measuring quality,
diversity and style with bootstrap intervals over prompts.

Plain library code: no files beyond a checkpoint directory, no printing, progress through a callback.
"""
