"""How it learns: sharded train state, pure train/eval steps, Orbax checkpoints, metrics,
and the loops for the LLM (``loop.train``) and the VQGAN (``vqgan_loop.train_vqgan``)."""
