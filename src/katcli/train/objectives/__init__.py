"""Training objectives, one module each: what they sample, which pure loss they minimise, how they evaluate."""
