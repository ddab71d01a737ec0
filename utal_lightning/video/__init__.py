"""From video files to features: decoding, clip backbones and ``utal extract`` (the ActionFormer layout)."""

VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".webm", ".mov")  # what `utal extract` reads and `utal view` plays
