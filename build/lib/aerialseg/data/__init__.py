"""Data: from a download (or a generated stand-in) to training patches.

Where the files come from (``sources``: URLs, local archives and folders, the generated set),
how ISPRS names them (``potsdam``), reading members of nested zips in place (``archives``), the
colour palette of the labels (``palette``), boundary-free labels (``boundaries``), the tile list
(``manifest``), the resize and patches stages (``resize``, ``patches``), the split by tile
(``splits``), the generated Potsdam-like tiles (``synthetic``) and Vaihingen download
(``synthetic_vaihingen``); other layouts: ``vaihingen``, and any folder of photo/label ``pairs``
with labels decoded by ``labels`` or burnt from ``polygons``. Nothing here imports Keras.
"""
