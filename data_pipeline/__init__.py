"""The LaionCele data pipeline (captions → names → images → clean identities → targets). Not built yet: issue #4."""

__all__: list[str] = []
