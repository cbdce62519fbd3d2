"""From sources to batches: Liquid formats per record, task mixing, packing into fixed
rows with segment ids, and the Grain iterator (checkpointable, one shard per host)."""
