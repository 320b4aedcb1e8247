"""The diffusers plugin: MagicNaming(pipe, encoder). Not built yet: issue #3."""

__all__: list[str] = []
