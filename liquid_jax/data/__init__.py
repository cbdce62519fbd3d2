"""What the model eats: tokenizers, images, sources, Liquid formats, Grain pipelines."""
