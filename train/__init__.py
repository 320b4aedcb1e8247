"""Training the name encoder with Lightning. Not built yet: issue #5."""

__all__: list[str] = []
