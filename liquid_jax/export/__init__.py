"""export"""

# The VQGAN as a taming / Chameleon checkpoint.
from liquid_jax.export.vqgan import load_vqgan as load_vqgan
from liquid_jax.export.vqgan import save_vqgan as save_vqgan
from liquid_jax.export.vqgan import vqgan_from_state_dict as vqgan_from_state_dict
from liquid_jax.export.vqgan import vqgan_to_state_dict as vqgan_to_state_dict
