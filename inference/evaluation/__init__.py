"""``magicnaming evaluate``: the paper's evaluation protocol on any encoder, side by side with the plain pipeline
and IP-Adapter — CLIP-TI, FID/KID against the plain pipeline's images, identity similarity and consistency, the
face-detection rate, the δ/η trade-off — with ``results.json``, ``table.md`` and a report."""
