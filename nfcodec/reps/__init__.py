"""One module per representation (see :mod:`nfcodec.variants`): ``dense``, ``pruned``, ``supermask``.

Each module holds both sides of its representation: the decoder side (torch-free) at module
level, the encoder side behind lazy imports of the training code, and registers itself in
:data:`nfcodec.variants.REPRESENTATIONS`.
"""
