"""Text tokenizers: one ``load_tokenizer`` over the SentencePiece and HF ``tokenizers``
back-ends, SentencePiece training, the rule that places Liquid's special tokens
(``base.plan_special_tokens``), and an HF directory's tokenizer files as data
(``files``: token table, copying, added tokens), and the directory's chat template
rendered as transformers renders it (``chat``)."""
