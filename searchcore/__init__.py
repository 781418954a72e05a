"""searchcore: NASNet-style cell search in pure PyTorch, usable without the web app."""

__version__ = "0.1.0"
