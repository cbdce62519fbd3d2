"""What a run directory holds and how to load a model from one (a train workdir or an
HF directory), through ``fileio`` (local paths or ``gs://``)."""
