"""Where records come from: JSON-lines and text files, image folders, TFDS, the shapes
world, and encoded code shards, each opened from a ``kind:path?options`` spec."""
