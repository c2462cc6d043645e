"""Audio autoencoders for CAM: audio [B, C, N] <-> continuous latents [B, T, D], one shared interface.

`MelAutoencoder` needs no weights (the default); `Music2LatentAutoencoder` needs the optional `music2latent`
package only when it is built, so importing this package never requires it.
"""

from .base import AudioAutoencoderMixin, resample_audio
from .encodec import EncodecAutoencoder
from .mel import MelAutoencoder
from .music2latent import Music2LatentAutoencoder
from .oobleck import OobleckAutoencoder

__all__ = [
    "AudioAutoencoderMixin",
    "EncodecAutoencoder",
    "MelAutoencoder",
    "Music2LatentAutoencoder",
    "OobleckAutoencoder",
    "resample_audio",
]
