"""Signal sources: one Protocol (``base.Source``), one registry keyed by ``type:``."""
