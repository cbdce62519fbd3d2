"""models"""

# The image tokenizer (taming / Chameleon VQGAN).
from liquid_jax.models.vqgan import VQGAN as VQGAN
from liquid_jax.models.vqgan_apply import decode_codes as decode_codes
from liquid_jax.models.vqgan_apply import encode_images as encode_images
from liquid_jax.models.vqgan_apply import make_decode_fn as make_decode_fn
from liquid_jax.models.vqgan_apply import make_encode_fn as make_encode_fn
from liquid_jax.models.vqgan_config import VQGANConfig as VQGANConfig
from liquid_jax.models.vqgan_config import chameleon_vqgan as chameleon_vqgan
from liquid_jax.models.vqgan_quantizer import VectorQuantizer as VectorQuantizer
