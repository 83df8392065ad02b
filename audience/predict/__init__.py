"""Prediction models: churn, subscription churn, lifetime value, recommendations, sentiment."""

import os

# LightGBM's and scikit-learn's OpenMP threads spin while they wait for work; on a shared
# 2-core machine that made a LightGBM fit 7x slower (benchmarks/RESULTS.md). Passive waiting
# must be set before the OpenMP runtime loads, i.e. before those libraries are imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
