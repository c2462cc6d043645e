"""cam_hf: Continuous Autoregressive Models (arXiv 2411.18447) for audio generation."""

__version__ = "0.1.0"
