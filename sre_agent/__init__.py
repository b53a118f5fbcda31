"""sre-agent: a self-hosted AI alert investigator."""

__version__ = "0.1.0"
