"""How weights leave and enter JAX: HF transformers directories (safetensors) for the
LLM, taming / Chameleon checkpoints for the VQGAN, and whole run directories."""

# The language model as an HF transformers directory (safetensors).
from liquid_jax.export.hf import load_hf as load_hf
from liquid_jax.export.hf import save_hf as save_hf
from liquid_jax.export.hf_import import export_hf as export_hf
from liquid_jax.export.hf_import import import_hf as import_hf
from liquid_jax.export.vocab_resize import expand_vocab as expand_vocab

# The VQGAN as a taming / Chameleon checkpoint.
from liquid_jax.export.vqgan import load_vqgan as load_vqgan
from liquid_jax.export.vqgan import save_vqgan as save_vqgan
from liquid_jax.export.vqgan import vqgan_from_state_dict as vqgan_from_state_dict
from liquid_jax.export.vqgan import vqgan_to_state_dict as vqgan_to_state_dict
