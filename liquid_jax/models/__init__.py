"""What the networks are: the decoder-only transformer (one spec for Gemma, Gemma2,
Qwen2/2.5 and Llama-3), its presets and KV cache, and the taming/Chameleon VQGAN."""

# The language model (Gemma / Gemma2 / Qwen2 / Llama-3 families).
from liquid_jax.models.decode_model import DecodeModel as DecodeModel
from liquid_jax.models.decode_model import greedy_generate as greedy_generate
from liquid_jax.models.kv_cache import KVCache as KVCache
from liquid_jax.models.presets import PRESETS as PRESETS
from liquid_jax.models.presets import get_preset as get_preset
from liquid_jax.models.spec import RopeScaling as RopeScaling
from liquid_jax.models.spec import TransformerSpec as TransformerSpec
from liquid_jax.models.transformer import PAD_LOGIT as PAD_LOGIT
from liquid_jax.models.transformer import Transformer as Transformer
from liquid_jax.models.transformer import count_params as count_params

# The image tokenizer (taming / Chameleon VQGAN).
from liquid_jax.models.vqgan import VQGAN as VQGAN
from liquid_jax.models.vqgan_apply import decode_codes as decode_codes
from liquid_jax.models.vqgan_apply import encode_images as encode_images
from liquid_jax.models.vqgan_apply import make_decode_fn as make_decode_fn
from liquid_jax.models.vqgan_apply import make_encode_fn as make_encode_fn
from liquid_jax.models.vqgan_config import VQGANConfig as VQGANConfig
from liquid_jax.models.vqgan_config import chameleon_vqgan as chameleon_vqgan
from liquid_jax.models.vqgan_quantizer import VectorQuantizer as VectorQuantizer
