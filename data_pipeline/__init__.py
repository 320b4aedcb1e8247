"""The LaionCele builder (installed as ``namespace.data_pipeline``): caption parquet and name lists → names →
matched captions → downloaded photos → CLIP features → SDXL probe → cleaned identities → name-embedding targets →
the LaionCele directory. :func:`.build.build` runs the stages in order; ``magicnaming data`` is its command line."""

__all__: list[str] = []
