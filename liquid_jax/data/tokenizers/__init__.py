"""Text tokenizers: one ``load_tokenizer`` over the SentencePiece and HF ``tokenizers``
back-ends, SentencePiece training, and the rule that places Liquid's special tokens."""
