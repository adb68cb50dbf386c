"""Meta-learned priors for the SIREN tile codec and for NeRV clips (training side only; the decoder
never imports it).

* :mod:`nfcodec.meta.data`: tasks, random augmented crops of images and video frames;
* :mod:`nfcodec.meta.learn`: MAML / Learnit, Meta-SGD, GradNCP (context pruning, bootstrap
  correction, test-time re-scaling), Meta-SparseINR pruning, and :func:`adapt` for the encoder;
* :mod:`nfcodec.meta.nerv`: the same for NeRV priors (clips as tasks, a batched NeRV, its inner
  loop and ``adapt_prior`` for :mod:`nfcodec.prior_encoder`);
* :mod:`nfcodec.meta.train`: :func:`train_prior` (``nfc prior train``), checkpoints, torchrun.

See docs/meta-learning.md.
"""
from __future__ import annotations

from .learn import adapt, adapt_prior, rescale_gradients
from .train import MetaConfig, MetaResult, meta_train, train_prior

__all__ = ["MetaConfig", "MetaResult", "meta_train", "train_prior", "adapt", "adapt_prior", "rescale_gradients"]
