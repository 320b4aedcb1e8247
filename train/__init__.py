"""Training the name encoder with Lightning: ``NameEncoderModule`` and two DataModules, the feature cache
(``CachedFeatureDataModule``) and streaming images (``StreamingImageDataModule``)."""

__all__: list[str] = []
