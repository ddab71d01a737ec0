"""On-disk dataset layouts (docs/method.md sec. 1.1), one file each; :class:`~.base.FileLayout` is the interface.

A layout of your own is a ``FileLayout`` subclass in a file of its own, named in the config
(``data.init_args.layout: {class_path: ...}``); :func:`find_layout` knows the shipped ones, for a config that
leaves the layout to the files.
"""

from __future__ import annotations

from pathlib import Path

from utal_lightning.data.layouts.actionformer import ActionFormerLayout
from utal_lightning.data.layouts.base import FileLayout
from utal_lightning.data.layouts.cola import CoLALayout
from utal_lightning.errors import DatasetError

SHIPPED: dict[str, type[FileLayout]] = {"cola": CoLALayout, "actionformer": ActionFormerLayout}
"""The shipped layouts by the name ``utal check --layout`` takes, in the order :func:`find_layout` tries them."""


def find_layout(root: Path, annotation_file: str | None = None) -> type[FileLayout]:
    """The shipped layout whose files ``root`` holds: CoLA when ``<root>/gt.json`` exists, else ActionFormer when
    ``<root>/annotations/`` holds a json; with ``annotation_file`` given, ActionFormer when it lies in
    ``annotations/``, else CoLA."""
    if annotation_file is not None:
        return ActionFormerLayout if Path(annotation_file).parts[:1] == ("annotations",) else CoLALayout
    for layout in SHIPPED.values():
        if layout.holds(root):
            return layout
    raise DatasetError(
        f"{root / 'gt.json'}: not found, and no annotations/<name>.json either "
        "(the CoLA and ActionFormer layouts of docs/method.md sec. 1.1)"
    )
