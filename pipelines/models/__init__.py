"""Learning stage: the training table of the trace dataset, one regressor per target, their evaluation."""
