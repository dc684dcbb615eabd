"""Evaluation and report: scores of the maps and the pictures of a run.

``metrics`` computes confusion matrices and per-class scores, ``evaluation`` is the evaluate
stage (test tiles and training snapshots), ``figures`` draws, ``report`` is the report stage.
"""
