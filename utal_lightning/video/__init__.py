"""From video files to features: decoding, clip backbones and ``utal extract`` (the ActionFormer layout)."""
