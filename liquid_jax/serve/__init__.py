"""``liquid-jax serve``: a web page to try a model (T2I, captioning / VQA, chat).

One ``Sampler`` is loaded once; requests are checked (``limits``), queued and run one at
a time by a single worker thread (``jobs``) through the ``Sampler`` API (``tasks``);
the page polls its job for progress and the result (``server``). Standard library only.

    from liquid_jax.serve import make_server
    server = make_server(sampler, port=0).start()   # server.url -> http://127.0.0.1:PORT
"""

from liquid_jax.serve.limits import Limits as Limits
from liquid_jax.serve.server import make_server as make_server
