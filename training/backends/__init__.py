"""Training backends. Each local backend trains one curriculum stage: `train_stage(job, on_step) -> StageOutput`."""
