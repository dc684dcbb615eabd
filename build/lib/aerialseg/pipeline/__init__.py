"""The pipeline's own plumbing, shared by every stage.

``params`` validates params.yaml into typed objects, ``choices`` lists the names it chooses
among, ``paths`` names every stage output, ``stage`` runs a stage (one-line errors, outputs kept
on failure), ``atomic`` writes outputs whole or not at all, ``tracking`` talks to MLflow.
"""
