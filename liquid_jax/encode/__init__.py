"""The offline ``encode-images`` stage: run a VQGAN over image-text sources and write
code shards (ArrayRecord) with a manifest, resumable and split across hosts."""
