"""Models and training: the architectures (`architectures`), the training loop (`train`) and ACC / ASR
of any model (`evaluate`): the layer every other folder builds on."""
