"""The synthetic shapes world: scenes, drawing, captions, a text corpus about it, and
its TFDS builders (the demo's data)."""
