"""The ``nfc`` command line (a thin layer over :mod:`nfcodec.api`)."""
