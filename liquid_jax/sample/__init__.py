"""How Liquid generates: prefill + compiled decode loop over a KV cache, classifier-free
guidance, top-k / top-p, and the T2I, I2T / VQA and text pipelines.

    from liquid_jax.sample import Sampler, load_for_sampling
    sampler = load_for_sampling(hf_dir, vqgan=vqgan_dir)
    images = sampler.t2i(["a red circle"], num_samples=4).images
"""

from liquid_jax.runs.load import NoModelError as NoModelError
from liquid_jax.sample.api import Sampler as Sampler
from liquid_jax.sample.decode_loop import Decoder as Decoder
from liquid_jax.sample.decode_loop import DecodeSpec as DecodeSpec
from liquid_jax.sample.decode_loop import Generation as Generation
from liquid_jax.sample.decode_loop import SamplingParams as SamplingParams
from liquid_jax.sample.loading import load_for_sampling as load_for_sampling
from liquid_jax.sample.t2i import T2IResult as T2IResult
